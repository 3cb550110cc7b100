// The x axes a metric chart can use: step (iteration), epoch, wall time and relative time (the
// point's wall-clock time minus the run's start), from one series read (`times=true` brings
// each point's time), or another metric of the same run and phase (`metric:<key>`). Also what a zoom on any of them means in iterations, the unit the server
// reads ranges in, and tick labels for the two time axes.

import { formatTime } from "./format.js";

/** [id, button label, axis caption, kind] of every x axis. */
export const AXES = [
  ["iteration", "Step", "iteration", "integer"],
  ["epoch", "Epoch", "epoch", "integer"],
  ["time", "Wall time", "wall time", "time"],
  ["relative", "Relative time", "relative time", "duration"],
];

const byId = new Map(AXES.map((a) => [a[0], a]));

const METRIC_AXIS = "metric:";

/** The metric key of an axis that is another metric (`metric:lr` -> `lr`), else null. */
export function xMetric(axis) {
  return typeof axis === "string" && axis.startsWith(METRIC_AXIS) && axis.length > METRIC_AXIS.length
    ? axis.slice(METRIC_AXIS.length) : null;
}

/** The axis id of metric `key` as x. */
export function metricAxis(key) {
  return METRIC_AXIS + key;
}

/** The axis id, or "iteration" for anything unknown (an old or hand-edited URL). */
export function knownAxis(id) {
  return byId.has(id) || xMetric(id) ? id : "iteration";
}

/** The caption of an axis ("relative time") and its kind ("integer", "time", "duration"). */
export function axisCaption(id) {
  const metric = xMetric(id);
  if (metric) return { caption: metric, kind: "number" };
  const [, , caption, kind] = byId.get(knownAxis(id));
  return { caption, kind };
}

/** Whether a read for this axis needs each point's wall-clock time. */
export function needsTimes(axis) {
  return axis === "time" || axis === "relative";
}

/**
 * Each point's x on a continuous axis (null where unknown), aligned with the series' columns.
 * @param {{iterations: number[], epochs: (number|null)[], times?: (number|null)[]}} series
 * @param {string} axis iteration, epoch, time or relative
 * @param {number|null} startedAt the run's start (relative time); the first point's time if null
 */
export function pointXs(series, axis, startedAt = null) {
  if (axis === "iteration") return series.iterations;
  if (axis === "epoch") return series.epochs.map((e) => (e === null || e === undefined || e < 0 ? null : e));
  const times = series.times ?? series.iterations.map(() => null);
  if (axis === "time") return times;
  const origin = startedAt ?? times.find((t) => t !== null && t !== undefined) ?? 0;
  return times.map((t) => (t === null || t === undefined ? null : t - origin));
}

/**
 * The iterations to read again for a zoom to `range` (in the axis' units), over every line's
 * current data: those inside it plus the nearest one on each side, so the zoomed chart has no
 * gap at its edges. Null when nothing was read yet.
 */
export function iterationRange(seriesList, range, axis, startedAts = []) {
  if (!range) return null;
  if (axis === "iteration") return range;
  let lo = Infinity;
  let hi = -Infinity;
  seriesList.forEach((series, i) => {
    const xs = pointXs(series, axis, startedAts[i] ?? null);
    let before = -Infinity;
    let after = Infinity;
    xs.forEach((x, k) => {
      if (x === null || x === undefined) return;
      const iteration = series.iterations[k];
      if (x < range.min) before = Math.max(before, iteration);
      else if (x > range.max) after = Math.min(after, iteration);
      else [lo, hi] = [Math.min(lo, iteration), Math.max(hi, iteration)];
    });
    if (Number.isFinite(before)) lo = Math.min(lo, before);
    if (Number.isFinite(after)) hi = Math.max(hi, after);
  });
  return Number.isFinite(lo) && Number.isFinite(hi) ? { min: lo, max: hi } : null;
}

const pad = (n) => String(n).padStart(2, "0");

/** Tick labels of a wall-time axis: seconds shown only when ticks are that close. */
export function timeTickLabels(splits, step) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  return splits.map((v) => {
    if (v === null || v === undefined) return "";
    const d = new Date(v * 1000);
    const clock = step < 60 ? `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
      : `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return span >= 86400 || step >= 86400 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}` : clock;
  });
}

/** A relative time as a compact tick label: "0s", "45s", "1m 30s", "2h", "1d 6h". */
export function durationLabel(seconds, step = 1) {
  const sign = seconds < 0 ? "-" : "";
  let s = Math.abs(seconds);
  if (s < 60) return `${sign}${step < 1 ? Number(s.toFixed(3)) : Math.round(s)}s`;
  s = Math.round(s);
  const [d, h, m, sec] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  const parts = d ? [[d, "d"], [h, "h"]] : h ? [[h, "h"], [m, "m"]] : [[m, "m"], [sec, "s"]];
  return sign + parts.filter(([n], i) => n || i === 0).map(([n, unit]) => `${n}${unit}`).join(" ");
}

/** Tick steps (seconds) of a relative-time axis: round seconds, minutes, hours and days. */
export const DURATION_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
  60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000];

/** How an x value reads in a tooltip on each kind of axis. */
export function formatAxisValue(kind, x) {
  if (kind === "time") return formatTime(x);
  if (kind === "duration") return durationLabel(x, 0.001);
  return null;
}

// Grouping runs by a hyperparameter: one colour per value, and per group a mean line with a
// min/max band. Runs are read at different iterations (each downsampled on its own), so each
// is interpolated linearly onto the union of the group's iterations, inside its own range
// only (no run is extended past its last point).

import { colourAt } from "./palette.js";
import { formatValue } from "./format.js";

const MISSING = "—";

/** The group key of a run: the hyperparameter's value as text ("—" when missing). */
export function groupValue(experiment, key) {
  const hp = experiment.hyperparameters || {};
  if (key === "status") return experiment.status;
  return key in hp ? formatValue(hp[key]) : MISSING;
}

/**
 * Groups of runs by `key`, in a stable order (numeric values ascending, runs without it last).
 * @returns {Array<{value: string, label: string, colour: string, ids: number[]}>}
 */
export function groupRuns(experiments, key) {
  const byValue = new Map();
  for (const e of experiments) {
    const value = groupValue(e, key);
    if (!byValue.has(value)) byValue.set(value, []);
    byValue.get(value).push(e.experiment_id);
  }
  const missing = (v) => (v === MISSING ? 1 : 0);
  const values = [...byValue.keys()].sort((a, b) =>
    missing(a) - missing(b) || a.localeCompare(b, undefined, { numeric: true }));
  return values.map((value, i) => ({
    value, label: `${key}=${value}`, colour: colourAt(i), ids: byValue.get(value),
  }));
}

function interpolate(xs, ys, x) {
  // xs ascending; null outside [xs[0], xs[last]]
  if (!xs.length || x < xs[0] || x > xs[xs.length - 1]) return null;
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid;
    else hi = mid;
  }
  if (xs[lo] === x) return ys[lo];
  if (xs[hi] === x) return ys[hi];
  const [y0, y1] = [ys[lo], ys[hi]];
  if (!Number.isFinite(y0) || !Number.isFinite(y1)) return null;
  return y0 + ((y1 - y0) * (x - xs[lo])) / (xs[hi] - xs[lo]);
}

/**
 * Mean, min and max of several lines at every x any of them has.
 * @param {Array<{xs: number[], ys: number[]}>} lines each sorted by x
 * @returns {{xs: number[], mean: number[], lo: number[], hi: number[], counts: number[]}}
 */
export function aggregate(lines) {
  const xs = [...new Set(lines.flatMap((l) => l.xs))].sort((a, b) => a - b);
  const mean = [];
  const lo = [];
  const hi = [];
  const counts = [];
  for (const x of xs) {
    let sum = 0;
    let n = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const line of lines) {
      const y = interpolate(line.xs, line.ys, x);
      if (y === null || !Number.isFinite(y)) continue;
      sum += y;
      n += 1;
      if (y < min) min = y;
      if (y > max) max = y;
    }
    mean.push(n ? sum / n : null);
    lo.push(n ? min : null);
    hi.push(n ? max : null);
    counts.push(n);
  }
  return { xs, mean, lo, hi, counts };
}

/** One line per group (mean, with a min/max band) from the runs' lines (`line.id` = run id). */
export function groupLines(lines, groups) {
  const out = [];
  for (const group of groups) {
    const members = lines.filter((l) => group.ids.includes(l.id));
    if (!members.length) continue;
    const { xs, mean, lo, hi } = aggregate(members);
    out.push({
      id: `group:${group.value}`, label: `${group.label} (${members.length} run${members.length === 1 ? "" : "s"})`,
      colour: group.colour, xs, ys: mean, band: members.length > 1 ? { lo, hi } : undefined,
    });
  }
  return out;
}

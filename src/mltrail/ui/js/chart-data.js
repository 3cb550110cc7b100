// Chart lines from what the server stores: a series on the step, epoch or a time axis, and a
// custom chart spec (update_chart) as lines, categories or groups of bars.

import { pointXs } from "./axes.js";
import { colourAt } from "./palette.js";

/**
 * A series read from the server as chart points on the chosen axis.
 * On the epoch axis each epoch shows its last value (points without an epoch are skipped); on
 * the time axes points whose time is unknown are skipped.
 * @param {{iterations: number[], epochs: (number|null)[], values: number[], times?: number[]}} series
 * @param {"iteration"|"epoch"|"time"|"relative"} axis
 * @param {number|null} [startedAt] the run's start, for relative time
 */
export function seriesPoints(series, axis, startedAt = null) {
  if (axis === "iteration") return { xs: series.iterations, ys: series.values };
  if (axis !== "epoch") {
    const all = pointXs(series, axis, startedAt);
    const xs = [];
    const ys = [];
    all.forEach((x, i) => {
      if (x === null || x === undefined) return;
      xs.push(x);
      ys.push(series.values[i]);
    });
    return { xs, ys };
  }
  const byEpoch = new Map();
  for (let i = 0; i < series.values.length; i++) {
    const epoch = series.epochs[i];
    if (epoch !== null && epoch !== undefined && epoch >= 0) byEpoch.set(epoch, series.values[i]);
  }
  const xs = [...byEpoch.keys()].sort((a, b) => a - b);
  return { xs, ys: xs.map((x) => byEpoch.get(x)) };
}

/**
 * A series against another metric of the same run: each point's x is the other metric's value
 * at the same iteration (points at iterations the other did not log are left out).
 * @param {{iterations: number[], values: number[]}} series
 * @param {{iterations: number[], values: number[]}} xSeries
 */
export function pointsAgainst(series, xSeries) {
  const xAt = new Map();
  xSeries.iterations.forEach((iteration, i) => xAt.set(iteration, xSeries.values[i]));
  const xs = [];
  const ys = [];
  series.iterations.forEach((iteration, i) => {
    const x = xAt.get(iteration);
    if (typeof x !== "number" || !Number.isFinite(x)) return;
    xs.push(x);
    ys.push(series.values[i]);
  });
  return { xs, ys };
}

/**
 * A custom chart spec ({name, scope, type, x_name, y_names, x, y}) as chart options and
 * lines. String x values become categories; each column of the y rows becomes a line (a
 * group of bars when the type is `bar`, each series shifted within its category).
 */
export function customChartLines(spec) {
  const categorical = spec.x.some((x) => typeof x === "string");
  const bar = spec.type === "bar";
  const xs = categorical || bar ? spec.x.map((_, i) => i) : spec.x.map(Number);
  const width = spec.y.reduce((n, row) => Math.max(n, Array.isArray(row) ? row.length : 1), 0);
  const names = spec.y_names?.length ? spec.y_names : ["Y"];
  const slot = bar ? 0.8 / width : 0;
  const lines = [];
  for (let j = 0; j < width; j++) {
    const offset = bar ? (j - (width - 1) / 2) * slot : 0;
    lines.push({
      label: names[j] ?? `${names[0]} ${j + 1}`,
      colour: colourAt(j),
      xs: offset ? xs.map((x) => x + offset) : xs,
      ys: spec.y.map((row) => (Array.isArray(row) ? row[j] : j === 0 ? row : null) ?? null),
      noSmoothing: true,
      barWidth: bar ? slot * 0.9 : undefined, // of a category's width: grouped bars side by side
    });
  }
  return {
    options: {
      title: spec.name,
      subtitle: `${spec.scope} · ${spec.type}`,
      kind: bar ? "bar" : "line",
      xLabel: spec.x_name,
      yLabel: names.length === 1 ? names[0] : names.join(", "),
      categories: categorical || bar ? spec.x.map(String) : undefined,
    },
    lines,
  };
}

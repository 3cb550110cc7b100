// Line charts over uPlot: aligned lines, smoothing, log scale, categorical x, hover legend,
// drag-to-zoom (double-click resets). Axis names are also written as DOM captions.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";
import { formatValue } from "./format.js";

export const PHASE_COLOURS = { train: "#1f77b4", validation: "#ff7f0e", test: "#2ca02c" };
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];

export const CHART_HEIGHT = 240;

/**
 * Exponential moving average with TensorBoard's debiasing; gaps (null/NaN) are kept.
 * @param {Array<number|null>} ys
 * @param {number} weight 0 (none) to <1
 */
export function smooth(ys, weight) {
  if (!weight) return ys;
  const out = new Array(ys.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    count += 1;
    out[i] = last / (1 - weight ** count);
  }
  return out;
}

/** Non-finite values become null (a gap in the line); on a log scale so do values <= 0. */
function plottable(ys, logScale) {
  return ys.map((y) =>
    y === null || y === undefined || !Number.isFinite(y) || (logScale && y <= 0) ? null : y,
  );
}

/** Sort a line's points by x (custom charts may send x out of order). */
function sortedByX(xs, ys) {
  let ascending = true;
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) ascending = false;
  if (ascending) return [xs, ys];
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  return [order.map((i) => xs[i]), order.map((i) => ys[i])];
}

/**
 * One chart card: title, uPlot canvas, axis captions, notes.
 *
 * `lines` are `{label, xs, ys, colour}`; xs numeric (iteration, epoch, value or category index).
 */
export class LineChart {
  /**
   * @param {HTMLElement} parent where the card is appended
   * @param {{title: string, subtitle?: string, xLabel: string, yLabel?: string,
   *          categories?: string[], logScale?: boolean, smoothing?: number}} options
   */
  constructor(parent, options) {
    this.options = { smoothing: 0, logScale: false, ...options };
    this.plot = null;
    this.lines = [];
    this.labelsKey = "";
    this.body = h("div", { class: "chart-body" });
    this.note = h("p", { class: "chart-note muted" });
    this.card = h(
      "figure",
      { class: "chart-card", dataset: { title: options.title } },
      h("figcaption", { class: "chart-title" }, options.title,
        options.subtitle ? h("span", { class: "badge" }, options.subtitle) : null),
      this.body,
      h("p", { class: "chart-axes muted" },
        h("span", { class: "axis-x" }, "x: ", options.xLabel),
        options.yLabel ? h("span", { class: "axis-y" }, " · y: ", options.yLabel) : null),
      this.note,
    );
    parent.append(this.card);
  }

  /** The chart's drawing width in CSS pixels (also what series requests use as max_points). */
  get width() {
    return Math.max(200, Math.floor(this.body.clientWidth || this.card.clientWidth || 400));
  }

  /** Replace the lines; rebuilds the plot when the set of lines changed, else just redraws. */
  setLines(lines, note = "") {
    this.lines = lines;
    this.note.textContent = note;
    this.render();
  }

  setSmoothing(weight) {
    this.options.smoothing = weight;
    this.render();
  }

  /** Change the x axis name (iteration / epoch): caption and plot are rebuilt. */
  setXLabel(xLabel) {
    this.options.xLabel = xLabel;
    this.card.querySelector(".axis-x").textContent = `x: ${xLabel}`;
    this.destroyPlot();
  }

  setLogScale(logScale) {
    this.options.logScale = logScale;
    this.destroyPlot();
    this.render();
  }

  data() {
    const { smoothing, logScale } = this.options;
    const tables = this.lines.map((line) => {
      const [xs, ys] = sortedByX(line.xs, line.ys);
      return [xs, plottable(smooth(ys, line.noSmoothing ? 0 : smoothing), logScale)];
    });
    return tables.length ? uPlot.join(tables) : [[]];
  }

  render() {
    const labelsKey = JSON.stringify(this.lines.map((l) => [l.label, l.colour]));
    if (!this.lines.length) {
      this.destroyPlot();
      this.body.replaceChildren(h("p", { class: "muted empty-chart" }, "No points to show."));
      return;
    }
    const data = this.data();
    // State a reader (or a test) can check without decoding the canvas.
    Object.assign(this.card.dataset, {
      yScale: this.options.logScale ? "log" : "linear",
      xAxis: this.options.xLabel,
      points: String(data[0].length),
      smoothing: String(this.options.smoothing || 0),
    });
    if (this.plot && labelsKey === this.labelsKey) {
      this.redraw(data);
      return;
    }
    this.destroyPlot();
    this.body.replaceChildren();
    this.labelsKey = labelsKey;
    this.plot = new uPlot(this.plotOptions(), data, this.body);
  }

  /** New data into the existing plot, keeping the x range the user zoomed to (live charts). */
  redraw(data) {
    const { min, max } = this.plot.scales.x;
    this.plot.setData(data);
    if (this.zoomed && min !== null && max !== null) this.plot.setScale("x", { min, max });
  }

  plotOptions() {
    const { categories, logScale, xLabel, yLabel } = this.options;
    const xValues = categories
      ? (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? categories[t] ?? "" : ""))
      : undefined;
    return {
      width: this.width,
      height: CHART_HEIGHT,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
      axes: [
        { label: xLabel, values: xValues, stroke: "#555", grid: { stroke: "#eee" } },
        { label: yLabel || "", stroke: "#555", grid: { stroke: "#eee" }, size: 60 },
      ],
      series: [
        {
          label: xLabel,
          value: (u, v) => (v === null || v === undefined ? "--" :
            categories ? categories[v] ?? String(v) : formatValue(v)),
        },
        ...this.lines.map((line) => ({
          label: line.label,
          stroke: line.colour,
          width: line.width ?? 1.5,
          points: { show: line.points ?? false, size: 5 },
          value: (u, v) => (v === null || v === undefined ? "--" : formatValue(v)),
        })),
      ],
      legend: { live: true },
      hooks: {
        // A drag selects a zoom; a double-click resets it (uPlot's defaults). Remember which,
        // so live refreshes do not throw the user's zoom away.
        setSelect: [(u) => { if (u.select.width > 0) this.zoomed = true; }],
        ready: [(u) => u.over.addEventListener("dblclick", () => { this.zoomed = false; })],
        setScale: [(u, key) => {
          if (key === "x") Object.assign(this.card.dataset, { xMin: u.scales.x.min, xMax: u.scales.x.max });
        }],
      },
    };
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width, height: CHART_HEIGHT });
  }

  destroyPlot() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
      this.labelsKey = "";
    }
  }

  destroy() {
    this.destroyPlot();
    this.card.remove();
  }
}

/** Resize every chart in the list when the window changes size (returns an unsubscribe). */
export function resizeWithWindow(charts) {
  let timer = null;
  const onResize = () => {
    clearTimeout(timer);
    timer = setTimeout(() => charts().forEach((c) => c.resize()), 150);
  };
  window.addEventListener("resize", onResize);
  return () => window.removeEventListener("resize", onResize);
}

/**
 * A series read from the server as chart points on the chosen axis.
 * On the epoch axis each epoch shows its last value (points without an epoch are skipped).
 * @param {{iterations: number[], epochs: (number|null)[], values: number[]}} series
 * @param {"iteration"|"epoch"} axis
 */
export function seriesPoints(series, axis) {
  if (axis === "iteration") return { xs: series.iterations, ys: series.values };
  const byEpoch = new Map();
  for (let i = 0; i < series.values.length; i++) {
    const epoch = series.epochs[i];
    if (epoch !== null && epoch !== undefined && epoch >= 0) byEpoch.set(epoch, series.values[i]);
  }
  const xs = [...byEpoch.keys()].sort((a, b) => a - b);
  return { xs, ys: xs.map((x) => byEpoch.get(x)) };
}

/**
 * A custom chart spec ({name, scope, x_name, y_names, x, y}) as LineChart options and lines.
 * String x values become categories; each column of the y rows becomes a line.
 */
export function customChartLines(spec) {
  const categorical = spec.x.some((x) => typeof x === "string");
  const xs = categorical ? spec.x.map((_, i) => i) : spec.x.map(Number);
  const width = spec.y.reduce((n, row) => Math.max(n, Array.isArray(row) ? row.length : 1), 0);
  const names = spec.y_names?.length ? spec.y_names : ["Y"];
  const lines = [];
  for (let j = 0; j < width; j++) {
    lines.push({
      label: names[j] ?? `${names[0]} ${j + 1}`,
      colour: PALETTE[j % PALETTE.length],
      xs,
      ys: spec.y.map((row) => (Array.isArray(row) ? row[j] : j === 0 ? row : null) ?? null),
      points: xs.length < 60,
      noSmoothing: true,
    });
  }
  return {
    options: {
      title: spec.name,
      subtitle: `${spec.scope} · ${spec.type}`,
      xLabel: spec.x_name,
      yLabel: names.length === 1 ? names[0] : names.join(", "),
      categories: categorical ? spec.x.map(String) : undefined,
    },
    lines,
  };
}

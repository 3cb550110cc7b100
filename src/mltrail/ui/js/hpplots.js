// Hyperparameters against metrics: a parallel-coordinates plot (one axis per hyperparameter
// that varies, the chosen metric last, one line per run) and a scatter plot (any column
// against the metric), drawn as SVG. Numeric axes spanning two decades or more are
// logarithmic (learning rates); text and booleans get one position per value.

import { h } from "./dom.js";
import { formatValue } from "./format.js";
import { niceTicks, tickLabels } from "./ticks.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 280;
const PAD = { top: 34, bottom: 30, left: 70, right: 70 };
const GRADIENT = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]]; // viridis
const MAX_ROWS = 2000;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

/** An axis over the rows' values of a column: numeric (linear or log) or categorical. */
export function makeAxis(column, rows) {
  const values = rows.map((r) => column.get(r)).filter((v) => v !== null && v !== undefined && !Number.isNaN(v));
  const numeric = values.length > 0 && values.every((v) => typeof v === "number" && Number.isFinite(v));
  const axis = { id: column.id, label: column.label, get: column.get };
  if (numeric) {
    let min = Math.min(...values);
    let max = Math.max(...values);
    const log = min > 0 && max / min >= 10;
    const distinct = [...new Set(values)].sort((p, q) => p - q);
    if (min === max) [min, max] = [min - (Math.abs(min) || 1) * 0.1, max + (Math.abs(max) || 1) * 0.1];
    const f = log ? Math.log10 : (v) => v;
    const [a, b] = [f(min), f(max)];
    return { ...axis, kind: log ? "log" : "linear", min, max, distinct,
      position: (v) => (typeof v === "number" && Number.isFinite(v) ? (f(v) - a) / (b - a) : null) };
  }
  const categories = [...new Set(values.map((v) => formatValue(v)))].sort((p, q) => p.localeCompare(q, undefined, { numeric: true }));
  const at = new Map(categories.map((c, i) => [c, categories.length === 1 ? 0.5 : i / (categories.length - 1)]));
  return { ...axis, kind: "category", categories,
    position: (v) => (v === null || v === undefined ? null : at.get(formatValue(v)) ?? null) };
}

/** Tick marks of an axis as [fraction 0..1, label]. */
function axisTicks(axis) {
  if (axis.kind === "category") return axis.categories.map((c) => [axis.position(c), c]);
  if (axis.distinct.length <= 6) return axis.distinct.map((v) => [axis.position(v), formatValue(v)]);
  if (axis.kind === "log") {
    const out = [];
    for (let k = Math.ceil(Math.log10(axis.min)); k <= Math.floor(Math.log10(axis.max)); k++) {
      out.push([axis.position(10 ** k), formatValue(10 ** k)]);
    }
    return out.length >= 2 ? out : [[0, formatValue(axis.min)], [1, formatValue(axis.max)]];
  }
  const { values, step } = niceTicks(axis.min, axis.max);
  const labels = tickLabels(values, step);
  return values.map((v, i) => [axis.position(v), labels[i]]);
}

/** A colour on the viridis gradient for t in 0..1. */
export function gradientColour(t) {
  const x = Math.min(1, Math.max(0, t)) * (GRADIENT.length - 1);
  const i = Math.min(GRADIENT.length - 2, Math.floor(x));
  const mix = GRADIENT[i].map((c, k) => Math.round(c + (GRADIENT[i + 1][k] - c) * (x - i)));
  return `rgb(${mix.join(",")})`;
}

function title(text) {
  return svg("title", {}, text);
}

function describe(row, axes, labelOf) {
  return [labelOf(row), ...axes.map((a) => `${a.label} = ${formatValue(a.get(row)) || "—"}`)].join("\n");
}

/**
 * The parallel-coordinates plot.
 * @param {{rows: Array, axes: Array, colourOf: (row) => string, labelOf: (row) => string,
 *          width: number}} options
 */
export function parallelCoordinates({ rows, axes, colourOf, labelOf, width }) {
  const inner = width - PAD.left - PAD.right;
  const x = (i) => PAD.left + (axes.length === 1 ? inner / 2 : (i * inner) / (axes.length - 1));
  const y = (t) => PAD.top + (1 - t) * (HEIGHT - PAD.top - PAD.bottom);
  const lines = rows.slice(0, MAX_ROWS).map((row) => {
    let d = "";
    let pen = false;
    axes.forEach((axis, i) => {
      const t = axis.position(axis.get(row));
      if (t === null) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(t).toFixed(1)}`;
      pen = true;
    });
    return svg("path", { d, class: "pc-line", stroke: colourOf(row), "data-id": row.experiment_id },
      title(describe(row, axes, labelOf)));
  });
  const axisMarks = axes.map((axis, i) => svg("g", { class: "pc-axis", "data-axis": axis.id },
    svg("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1), class: "axis-line" }),
    svg("text", {
      x: x(i), y: PAD.top - 14, class: "axis-name",
      "text-anchor": i === 0 && axes.length > 1 ? "start" : i === axes.length - 1 && axes.length > 1 ? "end" : "middle",
    }, axis.label),
    axisTicks(axis).map(([t, label]) => svg("text", {
      x: x(i) + 4, y: y(t) + 4, class: "axis-tick",
    }, label))));
  return svg("svg", {
    class: "parallel-coordinates", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
    "aria-label": `Parallel coordinates of ${rows.length} runs over ${axes.map((a) => a.label).join(", ")}`,
    "data-lines": lines.length,
  }, lines, axisMarks);
}

/** The scatter plot of `yAxis` against `xAxis`, one dot per run. */
export function scatterPlot({ rows, xAxis, yAxis, colourOf, labelOf, width }) {
  const x = (t) => PAD.left + t * (width - PAD.left - PAD.right);
  const y = (t) => PAD.top + (1 - t) * (HEIGHT - PAD.top - PAD.bottom);
  const dots = [];
  for (const row of rows.slice(0, MAX_ROWS)) {
    const tx = xAxis.position(xAxis.get(row));
    const ty = yAxis.position(yAxis.get(row));
    if (tx === null || ty === null) continue;
    dots.push(svg("circle", { cx: x(tx).toFixed(1), cy: y(ty).toFixed(1), r: 4.5, class: "scatter-dot",
      fill: colourOf(row), "data-id": row.experiment_id }, title(describe(row, [xAxis, yAxis], labelOf))));
  }
  const bottom = HEIGHT - PAD.bottom;
  return svg("svg", {
    class: "scatter-plot", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
    "aria-label": `${yAxis.label} against ${xAxis.label} for ${dots.length} runs`, "data-points": dots.length,
  },
  svg("line", { x1: PAD.left, x2: width - PAD.right, y1: bottom, y2: bottom, class: "axis-line" }),
  svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: bottom, class: "axis-line" }),
  axisTicks(xAxis).map(([t, label]) => svg("text", { x: x(t), y: bottom + 16, class: "axis-tick", "text-anchor": "middle" }, label)),
  axisTicks(yAxis).map(([t, label]) => svg("text", { x: PAD.left - 6, y: y(t) + 4, class: "axis-tick", "text-anchor": "end" }, label)),
  svg("text", { x: width - PAD.right, y: HEIGHT - 2, class: "axis-name", "text-anchor": "end" }, xAxis.label),
  svg("text", { x: PAD.left, y: PAD.top - 14, class: "axis-name" }, yAxis.label),
  dots);
}

function select(name, label, columns, chosen, onchange) {
  return h("label", { class: "plot-choice" }, `${label} `, h("select", { name, onchange },
    columns.map((c) => h("option", { value: c.id, selected: c.id === chosen }, c.group === "Hyperparameters" ? c.label : c.id))));
}

/**
 * Both plots with their choices (metric, scatter x). `colourOf(row)` colours runs; without
 * it runs are coloured by the metric on the viridis gradient.
 */
export class HparamPlots {
  constructor({ labelOf, colourOf = null }) {
    this.labelOf = labelOf;
    this.colourOf = colourOf;
    this.metricId = null;
    this.xId = null;
    this.element = h("div", { class: "hparam-plots" });
  }

  /** Draw for these rows and columns (call again when either changes). */
  update(rows, columns) {
    this.rows = rows;
    this.columns = columns;
    const hps = columns.filter((c) => c.group === "Hyperparameters" && c.varies !== false);
    const metrics = columns.filter((c) => c.group === "Metrics" || c.group === "External metrics");
    if (!rows.length || !metrics.length || !hps.length) {
      this.element.replaceChildren(h("p", { class: "muted" },
        "Plots need runs with a hyperparameter that varies and at least one metric."));
      return;
    }
    if (!metrics.some((c) => c.id === this.metricId)) {
      this.metricId = (metrics.find((c) => c.id.startsWith("validation/")) ?? metrics[0]).id;
    }
    const scatterChoices = [...hps, ...metrics.filter((c) => c.id !== this.metricId)];
    if (!scatterChoices.some((c) => c.id === this.xId)) this.xId = hps[0].id;
    const metric = makeAxis(metrics.find((c) => c.id === this.metricId), rows);
    const axes = [...hps.slice(0, 8).map((c) => makeAxis(c, rows)), metric];
    const colourOf = this.colourOf ?? ((row) => {
      const t = metric.position(metric.get(row));
      return t === null ? "#999999" : gradientColour(t);
    });
    const width = Math.max(320, Math.min(1600, this.element.clientWidth || 900));
    const xAxis = makeAxis(scatterChoices.find((c) => c.id === this.xId), rows);
    const redraw = () => this.update(this.rows, this.columns);
    this.element.replaceChildren(
      h("div", { class: "toolbar plot-choices" },
        select("plot-metric", "Metric", metrics, this.metricId, (event) => { this.metricId = event.target.value; redraw(); }),
        select("plot-x", "Scatter x", scatterChoices, this.xId, (event) => { this.xId = event.target.value; redraw(); }),
        rows.length > MAX_ROWS ? h("span", { class: "muted" }, `first ${MAX_ROWS} of ${rows.length} runs`) : null),
      h("div", { class: "plot-scroll" }, parallelCoordinates({ rows, axes, colourOf, labelOf: this.labelOf, width })),
      h("div", { class: "plot-scroll" }, scatterPlot({ rows, xAxis, yAxis: metric, colourOf, labelOf: this.labelOf, width: Math.min(width, 720) })));
  }
}

// Charts over uPlot: lines (or bars) aligned on x, point markers where lines are sparse,
// smoothing drawn over the faded raw line, min/max bands, log scale, categorical x, a
// floating tooltip, a compact legend (left out when a page shows one legend for all charts),
// drag-to-zoom that asks the page for the zoomed range at full resolution, and CSV export.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { downloadText, safeFilename, toCsv } from "./csv.js";
import { h } from "./dom.js";
import { formatValue } from "./format.js";
import { PHASE_COLOURS, withAlpha } from "./palette.js";
import { PANEL_HEIGHTS } from "./panels.js";
import { DURATION_STEPS, durationLabel, timeTickLabels } from "./axes.js";
import { axisWidth, labelSpace, logTickLabels, paddedRange, tickLabels } from "./ticks.js";
import { tooltipPlugin } from "./tooltip.js";

export { PHASE_COLOURS };
export const CHART_HEIGHT = 240;
/** Charts with more lines than this show no legend of their own (the tooltip names lines). */
export const LEGEND_MAX = 12;
const AXIS_FONT = "12px system-ui, sans-serif";
const FULLSCREEN_CHROME = 130; // px of a full-screen card outside its plot (head, captions, note)
const POINT_SPACING = 6; // px per point below which a line gets markers
const INTEGER_STEPS = [1, 2, 2.5, 5].flatMap((m) => Array.from({ length: 13 }, (_, k) => m * 10 ** k))
  .filter((step) => Number.isInteger(step)).sort((a, b) => a - b);

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

/** A line's columns sorted by x (custom charts may send x out of order). */
function sortedLine(line) {
  const { xs } = line;
  let ascending = true;
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) ascending = false;
  const pick = (col) => (ascending || !col ? col : order.map((i) => col[i]));
  const order = ascending ? null : xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  return { xs: pick(xs), ys: pick(line.ys), lo: pick(line.band?.lo), hi: pick(line.band?.hi) };
}

/** Indices of values with no neighbour to draw a segment to (shown as markers). */
function isolatedPoints(ys) {
  const out = [];
  let prev = null; // the previous value that is not an alignment artifact (undefined)
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] === undefined) continue;
    if (ys[i] !== null) {
      let next = i + 1;
      while (next < ys.length && ys[next] === undefined) next++;
      if ((prev === null) && (next >= ys.length || ys[next] === null)) out.push(i);
    }
    prev = ys[i];
  }
  return out;
}

const pointCache = new WeakMap();

/** Distance (CSS px) beyond the viewport at which a chart is already drawn before it scrolls in. */
const DRAW_MARGIN = "800px 0px";
const waitingCharts = new WeakMap(); // card -> LineChart not drawn yet
let drawObserver = null;

/**
 * Charts are drawn (their uPlot built) only when their card comes near the screen: a page of
 * 1,000 metrics builds the dozen it shows, and the rest as they are scrolled to. Their data is
 * read and summarised (data-points, legend) at once; only the canvas waits.
 */
function observeUntilNear(chart) {
  if (typeof IntersectionObserver === "undefined") {
    chart.near = true;
    return;
  }
  drawObserver ??= new IntersectionObserver((seen) => {
    for (const entry of seen) {
      if (!entry.isIntersecting) continue;
      drawObserver.unobserve(entry.target);
      const waiting = waitingCharts.get(entry.target);
      waitingCharts.delete(entry.target);
      waiting?.onNear();
    }
  }, { rootMargin: DRAW_MARGIN });
  waitingCharts.set(chart.card, chart);
  drawObserver.observe(chart.card);
}

function stopObserving(chart) {
  if (drawObserver && waitingCharts.has(chart.card)) {
    drawObserver.unobserve(chart.card);
    waitingCharts.delete(chart.card);
  }
}

/** A drawn column's number of values and its isolated points (cached per data array). */
function pointsOf(ys) {
  let found = pointCache.get(ys);
  if (!found) {
    let count = 0;
    for (const y of ys) if (y !== null && y !== undefined) count++;
    found = { count, isolated: isolatedPoints(ys) };
    pointCache.set(ys, found);
  }
  return found;
}

function themeColours() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return { axis: read("--chart-axis", "#555"), grid: read("--chart-grid", "#eee") };
}

/**
 * One chart card: title, tools (CSV, reset zoom), uPlot canvas, legend, axis captions, note.
 * `lines` are `{label, colour, xs, ys, band?: {lo, hi}, noSmoothing?, id?}`.
 */
export class LineChart {
  /**
   * @param {HTMLElement} parent where the card is appended
   * @param {{title: string, subtitle?: string, xLabel: string,
   *          xKind?: "number"|"integer"|"time"|"duration",
   *          yLabel?: string,
   *          categories?: string[], logScale?: boolean, smoothing?: number, kind?: string,
   *          legend?: boolean, size?: "s"|"m"|"l", tools?: Node[], onResize?: () => void,
   *          onZoom?: (range: {min: number, max: number}|null) => void}} options
   *     `size`: the plot's height (a large chart spans its grid row); `tools`: more controls
   *     in the card's head
   */
  constructor(parent, options) {
    this.options = { smoothing: 0, logScale: false, kind: "line", legend: true, xKind: "number", size: "m", ...options };
    this.plot = null;
    this.lines = [];
    this.meta = [];
    this.hidden = new Set();
    this.structure = "";
    this.zoomed = false;
    this.near = false; // on or near the screen once: the plot may be built
    this.body = h("div", { class: "chart-body" });
    this.legend = h("div", { class: "chart-legend" });
    this.note = h("p", { class: "chart-note muted" });
    this.resetButton = h("button", {
      type: "button", class: "chart-tool chart-reset", hidden: true, onclick: () => this.resetZoom(),
    }, "Reset zoom");
    this.fullscreenButton = h("button", {
      type: "button", class: "chart-tool chart-fullscreen", "aria-pressed": "false",
      "aria-label": `Full screen: ${options.title}`, title: "Full screen (Esc to leave)",
      onclick: () => this.setFullscreen(!this.fullscreen),
    }, "Full");
    this.fullscreen = false;
    this.onKey = (event) => { if (event.key === "Escape") this.setFullscreen(false); };
    this.card = h("figure", { class: "chart-card", dataset: { title: options.title, kind: this.options.kind } },
      h("figcaption", { class: "chart-head" },
        h("span", { class: "chart-title" }, options.title,
          options.subtitle ? h("span", { class: "badge" }, options.subtitle) : null),
        h("span", { class: "chart-tools" }, this.resetButton, options.tools ?? null, this.fullscreenButton,
          h("button", {
            type: "button", class: "chart-tool chart-csv", title: `Download the data of ${options.title} as CSV`,
            onclick: () => this.downloadCsv(),
          }, "CSV"))),
      this.body,
      this.legend,
      h("p", { class: "chart-axes muted" },
        h("span", { class: "axis-x" }, "x: ", options.xLabel),
        options.yLabel ? h("span", { class: "axis-y" }, " · y: ", options.yLabel) : null),
      this.note);
    this.card.dataset.drawn = "false";
    this.card.dataset.size = this.options.size;
    parent.append(this.card);
    observeUntilNear(this);
  }

  /** The card came near the screen: build the plot of the lines it already holds. */
  onNear() {
    this.near = true;
    if (this.lines.length) this.render();
  }

  /** The chart's drawing width in CSS pixels (also what series requests use as max_points). */
  get width() {
    return Math.max(200, Math.floor(this.body.clientWidth || this.card.clientWidth || 400));
  }

  /** The plot's height in CSS pixels (from the panel's size, or the window in full screen). */
  get height() {
    if (this.fullscreen) return Math.max(CHART_HEIGHT, window.innerHeight - FULLSCREEN_CHROME);
    return PANEL_HEIGHTS[this.options.size] ?? CHART_HEIGHT;
  }

  /** Small, medium or large: a new height (and, large, the grid's whole row). */
  setSize(size) {
    this.options.size = size;
    this.card.dataset.size = size;
    this.resized();
  }

  /** The card over the whole window (Esc, or the button again, puts it back). */
  setFullscreen(on) {
    if (on === this.fullscreen) return;
    this.fullscreen = on;
    this.card.classList.toggle("fullscreen", on);
    this.fullscreenButton.setAttribute("aria-pressed", String(on));
    if (on) document.addEventListener("keydown", this.onKey);
    else document.removeEventListener("keydown", this.onKey);
    this.resized();
    if (on) this.fullscreenButton.focus();
  }

  /** The card changed size: redraw, and tell the page (it may re-read at the new width). */
  resized() {
    if (!this.near && this.fullscreen) this.onNear();
    this.resize();
    this.options.onResize?.();
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

  /** Change the x axis (name, and kind: number, time or duration): caption and plot are rebuilt. */
  setXLabel(xLabel, xKind = this.options.xKind) {
    this.options.xLabel = xLabel;
    this.options.xKind = xKind;
    this.card.querySelector(".axis-x").textContent = `x: ${xLabel}`;
    this.zoomed = false;
    this.destroyPlot();
  }

  setLogScale(logScale) {
    this.options.logScale = logScale;
    this.destroyPlot();
    this.render();
  }

  /** Hide the lines whose `id` is in the set (a shared legend's toggles). */
  setHidden(ids) {
    this.hidden = new Set(ids);
    if (!this.plot) return;
    this.meta.forEach((m, i) => {
      const show = !this.hidden.has(this.lines[m.line].id);
      if (this.plot.series[i + 1].show !== show) this.plot.setSeries(i + 1, { show });
    });
  }

  /** Emphasise one line (by `id`), or none. */
  highlight(id) {
    if (!this.plot) return;
    const index = this.meta.findIndex((m) => m.role === "main" && this.lines[m.line].id === id);
    this.plot.setSeries(index >= 0 ? index + 1 : null, { focus: true });
  }

  /** uPlot's aligned data and, per uPlot series, which line and role it draws. */
  data() {
    const { smoothing, logScale } = this.options;
    const tables = [];
    const meta = [];
    this.lines.forEach((line, index) => {
      const { xs, ys, lo, hi } = sortedLine(line);
      const table = [xs];
      const raw = plottable(ys, logScale);
      if (smoothing && !line.noSmoothing && this.options.kind !== "bar") {
        table.push(raw, plottable(smooth(ys, smoothing), logScale));
        meta.push({ line: index, role: "raw" }, { line: index, role: "main" });
      } else {
        table.push(raw);
        meta.push({ line: index, role: "main" });
      }
      if (lo && hi) {
        table.push(plottable(lo, logScale), plottable(hi, logScale));
        meta.push({ line: index, role: "lo" }, { line: index, role: "hi" });
      }
      tables.push(table);
    });
    return { data: tables.length ? uPlot.join(tables) : [[]], meta };
  }

  render() {
    if (!this.lines.length) {
      this.destroyPlot();
      this.body.replaceChildren(h("p", { class: "muted empty-chart" }, "No points to show."));
      this.card.dataset.drawn = "empty";
      this.legend.replaceChildren();
      return;
    }
    const { data, meta } = this.data();
    const structure = JSON.stringify([meta, this.lines.map((l) => [l.label, l.colour, l.id])]);
    // State a reader (or a test) can check without decoding the canvas.
    Object.assign(this.card.dataset, {
      yScale: this.options.logScale ? "log" : "linear",
      xAxis: this.options.xLabel,
      points: String(data[0].length),
      lines: String(this.lines.length),
      rawLines: String(meta.filter((m) => m.role === "raw").length),
      bands: String(meta.filter((m) => m.role === "hi").length),
      smoothing: String(this.options.smoothing || 0),
    });
    this.renderLegend();
    if (this.plot && structure === this.structure) {
      this.meta = meta;
      this.redraw(data);
      return;
    }
    this.destroyPlot();
    this.body.replaceChildren();
    this.meta = meta;
    if (!this.near) return; // built when the card scrolls near (observeUntilNear)
    this.structure = structure;
    this.plot = new uPlot(this.plotOptions(data), data, this.body);
    this.card.dataset.drawn = "true";
    this.setHidden(this.hidden);
  }

  /** New data into the existing plot, keeping the x range the user zoomed to. */
  redraw(data) {
    const { min, max } = this.plot.scales.x;
    this.plot.setData(data);
    if (this.zoomed && min !== null && max !== null) this.plot.setScale("x", { min, max });
  }

  renderLegend() {
    const show = this.options.legend && this.lines.length <= LEGEND_MAX;
    this.legend.hidden = !show;
    if (!show) return this.legend.replaceChildren();
    this.legend.replaceChildren(...this.lines.map((line) => {
      const last = [...line.ys].reverse().find((y) => typeof y === "number" && !Number.isNaN(y));
      const mark = h("span", { class: "swatch", "aria-hidden": "true" });
      mark.style.background = line.colour;
      return h("span", { class: "legend-item", dataset: { colour: line.colour } }, mark,
        h("span", { class: "legend-label" }, line.label),
        last === undefined ? null : h("span", { class: "legend-value muted", title: "last value" }, formatValue(last)));
    }));
  }

  xAxis(theme) {
    const { categories, xLabel } = this.options;
    const axis = {
      label: xLabel, stroke: theme.axis, font: AXIS_FONT, labelFont: AXIS_FONT,
      grid: { stroke: theme.grid }, ticks: { stroke: theme.grid },
    };
    if (this.options.xKind === "time") {
      axis.space = 70;
      axis.values = (u, splits, i, space, step) => this.recordTicks("x", timeTickLabels(splits, step));
      return axis;
    }
    if (this.options.xKind === "duration") {
      axis.space = 60;
      axis.incrs = DURATION_STEPS;
      axis.values = (u, splits, i, space, step) => this.recordTicks("x", splits.map((v) => durationLabel(v, step)));
      return axis;
    }
    if (!categories) {
      if (this.options.xKind === "integer") axis.incrs = INTEGER_STEPS; // steps, epochs: no tick between two
      axis.space = (u, i, min, max) => labelSpace(min, max);
      axis.values = (u, splits, i, space, step) => this.recordTicks("x", tickLabels(splits, step));
      return axis;
    }
    const longest = Math.max(1, ...categories.map((c) => c.length));
    const fits = this.width / Math.max(1, categories.length) >= longest * 7 + 8;
    axis.splits = (u) => categories.map((_, i) => i).filter((i) => i >= u.scales.x.min && i <= u.scales.x.max);
    axis.values = (u, splits) => this.recordTicks("x", splits.map((i) => categories[i] ?? ""));
    if (!fits) Object.assign(axis, { rotate: -40, size: Math.min(120, longest * 5 + 30) });
    return axis;
  }

  yAxis(theme) {
    const { logScale, yLabel } = this.options;
    return {
      label: yLabel || "", stroke: theme.axis, font: AXIS_FONT, labelFont: AXIS_FONT,
      grid: { stroke: theme.grid }, ticks: { stroke: theme.grid },
      values: (u, splits, i, space, step) =>
        this.recordTicks("y", logScale ? logTickLabels(splits) : tickLabels(splits, step)),
      size: (u, values) => axisWidth(values) + (yLabel ? 18 : 0),
    };
  }

  /** Keep the drawn tick labels on the card (data-x-ticks / data-y-ticks) for readers. */
  recordTicks(axis, labels) {
    this.card.dataset[`${axis}Ticks`] = JSON.stringify(labels);
    return labels;
  }

  scales() {
    const { categories, logScale, kind, xKind } = this.options;
    const x = { time: xKind === "time" };
    const integer = xKind === "integer";
    if (categories) x.range = () => [-0.5, categories.length - 0.5];
    else {
      x.range = (u, min, max) => {
        // uPlot widens a single x to a round range first (4999 -> 0..10,000): centre it instead
        const xs = u.data?.[0] ?? [];
        if (!this.zoomed && xs.length && xs[0] === xs[xs.length - 1]) return paddedRange(xs[0], xs[0], { integer });
        return paddedRange(min, max, { integer });
      };
    }
    let y;
    if (logScale) {
      y = { distr: 3, range: (u, min, max) => (min === max ? [min / 2, max * 2] : uPlot.rangeLog(min, max, 10, true)) };
    } else {
      y = {
        range: (u, min, max) => {
          if (kind === "bar") [min, max] = [Math.min(0, min), Math.max(0, max)];
          return min === max ? paddedRange(min, max) : uPlot.rangeNum(min, max, 0.1, true);
        },
      };
    }
    return { x, y };
  }

  seriesOptions(m) {
    const line = this.lines[m.line];
    const colour = line.colour;
    if (m.role === "raw") return { label: `${line.label} (raw)`, stroke: withAlpha(colour, 0.3), width: 1, points: { show: false } };
    if (m.role !== "main") return { label: `${line.label} (${m.role})`, stroke: "transparent", width: 0, points: { show: false } };
    if (this.options.kind === "bar") {
      return { label: line.label, stroke: colour, fill: withAlpha(colour, 0.7), width: 1,
        paths: uPlot.paths.bars({ size: [line.barWidth ?? 0.8, 120] }), points: { show: false } };
    }
    return {
      label: line.label, stroke: colour, width: line.width ?? (this.lines.length > LEGEND_MAX ? 1.25 : 1.5),
      points: {
        size: 6, fill: colour, stroke: colour,
        // markers where the line is sparse; else only on points no segment reaches
        show: (u, si) => pointsOf(u.data[si]).count * POINT_SPACING <= u.bbox.width / devicePixelRatio,
        filter: (u, si, show) => (show ? null : pointsOf(u.data[si]).isolated),
      },
    };
  }

  plotOptions() {
    const theme = themeColours();
    const bands = [];
    this.meta.forEach((m, i) => {
      if (m.role !== "hi") return;
      const lo = this.meta.findIndex((r) => r.line === m.line && r.role === "lo");
      bands.push({ series: [i + 1, lo + 1], fill: withAlpha(this.lines[m.line].colour, 0.16) });
    });
    const many = this.lines.length > 1;
    return {
      width: this.width,
      height: this.height,
      cursor: {
        drag: { x: !this.options.categories, y: false },
        focus: { prox: 12 },
        hover: { prox: 40 },
        points: { show: (u, si) => this.meta[si - 1]?.role === "main" },
      },
      focus: { alpha: many ? 0.3 : 1 },
      scales: this.scales(),
      axes: [this.xAxis(theme), this.yAxis(theme)],
      series: [{ label: this.options.xLabel }, ...this.meta.map((m) => this.seriesOptions(m))],
      bands,
      legend: { show: false },
      plugins: [tooltipPlugin(this)],
      hooks: {
        setSelect: [(u) => { if (u.select.width > 0) this.pendingZoom = true; }],
        setScale: [(u, key) => {
          if (key !== "x") return;
          Object.assign(this.card.dataset, { xMin: u.scales.x.min, xMax: u.scales.x.max });
          if (!this.pendingZoom) return;
          this.pendingZoom = false;
          this.zoomed = true;
          this.resetButton.hidden = false;
          this.options.onZoom?.({ min: u.scales.x.min, max: u.scales.x.max });
        }],
        ready: [(u) => u.over.addEventListener("dblclick", () => this.resetZoom())],
      },
    };
  }

  /** Back to the whole x range (double-click or the Reset zoom button). */
  resetZoom() {
    const wasZoomed = this.zoomed;
    this.zoomed = false;
    this.resetButton.hidden = true;
    if (this.options.onZoom && wasZoomed) this.options.onZoom(null);
    else if (this.plot) this.plot.setData(this.plot.data);
  }

  /** The chart's data (before smoothing) as CSV: one row per x, one column per line. */
  csv() {
    const columns = [];
    for (const line of this.lines) {
      const { xs, ys, lo, hi } = sortedLine(line);
      columns.push([line.label, xs, ys]);
      if (lo && hi) columns.push([`${line.label} (min)`, xs, lo], [`${line.label} (max)`, xs, hi]);
    }
    const allX = [...new Set(columns.flatMap(([, xs]) => xs))].sort((a, b) => a - b);
    const maps = columns.map(([, xs, ys]) => new Map(xs.map((x, i) => [x, ys[i]])));
    const { categories } = this.options;
    const rows = allX.map((x) => [categories ? categories[x] ?? x : x, ...maps.map((m) => m.get(x))]);
    return toCsv([this.options.xLabel, ...columns.map(([label]) => label)], rows);
  }

  downloadCsv() {
    downloadText(`${safeFilename(this.options.exportName ?? this.options.title)}.csv`, this.csv());
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width, height: this.height });
  }

  destroyPlot() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
      this.structure = "";
      this.card.dataset.drawn = "false";
    }
  }

  destroy() {
    stopObserving(this);
    document.removeEventListener("keydown", this.onKey);
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

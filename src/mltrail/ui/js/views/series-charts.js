// A grid of metric charts whose lines are stored series, shared by the experiment page (one
// line per phase) and the compare view (one line per experiment, or per group). Each line is
// read downsampled to about the chart's pixel width; a zoomed chart re-reads its visible
// iterations at that resolution (on any x axis: a zoom in epochs or time is turned into the
// iterations it covers), so zooming shows real points, not stretched buckets.

import { AXES, axisCaption, iterationRange, knownAxis, metricAxis, needsTimes, xMetric } from "../axes.js";
import { pointsAgainst, seriesPoints } from "../chart-data.js";
import { LineChart, resizeWithWindow } from "../charts.js";
import { h } from "../dom.js";
import { formatCount } from "../format.js";
import { panelTools } from "../panels.js";
import { readLines } from "../series.js";

/**
 * Charts keyed by id. `sync(specs)` creates missing charts, re-reads every line and redraws.
 * A spec is `{id, title, yLabel, lines: [{id, label, colour, project, experiment, key, phase,
 * startedAt}]}` (`startedAt`: the run's start, for relative time).
 * `shape(lines, spec)` may turn the drawn lines into others (groups with bands); `layout` (a
 * PanelLayout) gives each chart size and move tools, and keeps the sizes and order chosen.
 */
const X_METRIC_POINTS = 20_000; // points per line read for a metric x axis

export class SeriesCharts {
  constructor(ctx, settings, { legend = true, shape = (lines) => lines, layout = null } = {}) {
    this.ctx = ctx;
    this.layout = layout;
    this.settings = settings; // {axis, smoothing, logScale}
    this.legend = legend;
    this.shape = shape;
    this.hidden = new Set();
    this.charts = new Map(); // id -> {chart, spec, data: [series], range}
    this.element = h("div", { class: "chart-grid" });
    this.stopResize = resizeWithWindow(() => [...this.charts.values()].map((c) => c.chart));
    ctx.signal.addEventListener("abort", () => this.stopResize());
  }

  async sync(specs) {
    for (const spec of specs) {
      if (!this.charts.has(spec.id)) {
        const entry = { spec, data: [], iterations: null };
        const { caption, kind } = axisCaption(this.settings.axis);
        const size = this.layout?.sizeOf(spec.id) ?? "m";
        const tools = this.layout ? panelTools(spec.title, size, {
          onSize: (chosen) => this.resizeChart(entry, chosen),
          onMove: (delta, button) => this.moveChart(spec.id, delta, button),
        }) : null;
        entry.chart = new LineChart(this.element, {
          title: spec.title, xLabel: caption, xKind: kind, yLabel: spec.yLabel, legend: this.legend,
          smoothing: this.settings.smoothing, logScale: this.settings.logScale, size, tools,
          onZoom: (range) => this.zoom(entry, range).catch((error) => this.ctx.fail(error)),
          onResize: () => { if (entry.data.length) this.refresh(entry).catch((error) => this.ctx.fail(error)); },
        });
        entry.chart.card.dataset.panel = spec.id;
        entry.chart.card.hidden = !this.matches(spec);
        entry.chart.setHidden(this.hidden);
        this.charts.set(spec.id, entry);
      }
      this.charts.get(spec.id).spec = spec;
    }
    this.arrange();
    await this.refresh(...specs.map((spec) => this.charts.get(spec.id)));
  }

  /** The charts' ids in the order shown. */
  shownOrder() {
    return [...this.element.children].map((card) => card.dataset.panel).filter((id) => this.charts.has(id));
  }

  /** Put the cards in the layout's saved order (charts it does not know keep theirs, last). */
  arrange() {
    if (!this.layout) return;
    const ids = this.shownOrder();
    const order = this.layout.arrange(ids);
    if (order.every((id, i) => id === ids[i])) return;
    this.element.append(...order.map((id) => this.charts.get(id).chart.card));
  }

  moveChart(id, delta, button) {
    this.layout.move(this.shownOrder(), id, delta);
    this.arrange();
    button.focus(); // moving the card took the focus away
  }

  /** A new size: redrawn at once, re-read at the new width (a large chart is wider). */
  resizeChart(entry, size) {
    this.layout.setSize(entry.spec.id, size);
    entry.chart.setSize(size);
  }

  /** Whether a chart's title holds every word of the metric filter (any case). */
  matches(spec) {
    const title = spec.title.toLowerCase();
    return (this.settings.filter || "").toLowerCase().split(/\s+/).every((word) => title.includes(word));
  }

  /** Show only the charts matching the metric filter; returns how many are shown. */
  setFilter(text) {
    this.settings.filter = text;
    let shown = 0;
    for (const entry of this.charts.values()) {
      entry.chart.card.hidden = !this.matches(entry.spec);
      if (!entry.chart.card.hidden) shown++;
    }
    return shown;
  }

  /**
   * Re-read charts' lines (only the zoomed iterations of a zoomed chart): one request for
   * every chart of the same width and range, so a whole view is usually one round trip.
   */
  async refresh(...entries) {
    const groups = new Map();
    for (const entry of entries) {
      const key = JSON.stringify([entry.chart.width, entry.iterations]);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(entry);
    }
    const times = needsTimes(this.settings.axis);
    const xKey = xMetric(this.settings.axis);
    await Promise.all([...groups.values()].map(async (group) => {
      const range = group[0].iterations;
      const lines = group.flatMap((entry) => entry.spec.lines);
      // against another metric: its series of the same run and phase, in the same read, at a
      // resolution where most points of both share an iteration
      const read = xKey ? [...lines, ...lines.map((line) => ({ ...line, key: xKey }))] : lines;
      const maxPoints = xKey ? Math.max(X_METRIC_POINTS, group[0].chart.width) : group[0].chart.width;
      const data = await readLines(read, { maxPoints, range, times, signal: this.ctx.signal });
      let at = 0;
      for (const entry of group) {
        const count = entry.spec.lines.length;
        const mine = data.slice(at, at + count);
        const xs = xKey ? data.slice(lines.length + at, lines.length + at + count) : null;
        at += count;
        if (range !== entry.iterations) continue; // the zoom moved on
        entry.data = mine;
        entry.xData = xs;
        entry.xKey = xKey;
        entry.readRange = range;
        this.draw(entry);
      }
    }));
  }

  /** A zoom to `range` (axis units; null: reset) re-reads the iterations it covers. */
  async zoom(entry, range) {
    if (xMetric(this.settings.axis)) return; // x is not ordered by iteration: the zoom stays on screen
    const starts = entry.spec.lines.map((line) => line.startedAt ?? null);
    entry.iterations = iterationRange(entry.data, range, this.settings.axis, starts);
    await this.refresh(entry);
  }

  draw(entry) {
    const { axis } = this.settings;
    const against = entry.xKey && entry.xKey === xMetric(axis) ? entry.xData : null;
    const lines = entry.spec.lines.map((line, i) => ({
      id: line.id, label: line.label, colour: line.colour, source: line,
      ...(against ? pointsAgainst(entry.data[i], against[i]) : seriesPoints(entry.data[i], axis, line.startedAt ?? null)),
    }));
    const shown = this.shape(lines.filter((line) => line.xs.length), entry.spec);
    entry.chart.setLines(shown, this.note(entry, lines, shown));
    const range = entry.readRange;
    Object.assign(entry.chart.card.dataset, {
      readStart: range ? Math.floor(range.min) : "", readEnd: range ? Math.ceil(range.max) : "",
      downsampled: String(entry.data.some((s) => s.downsampled)),
    });
  }

  note(entry, lines, shown) {
    const thinned = entry.data.map((s, i) => [s, entry.spec.lines[i]]).filter(([s]) => s.downsampled);
    const parts = [];
    if (entry.readRange) {
      const { min, max } = entry.readRange;
      parts.push(`Zoomed to iterations ${formatCount(Math.floor(min))}–${formatCount(Math.ceil(max))}` +
        (thinned.length ? ", re-read at the chart's resolution." : ": every stored point shown."));
    }
    if (thinned.length && thinned.length <= 3) {
      parts.push("Downsampled for display: " + thinned.map(([s, line]) =>
        `${line.label}: ${formatCount(s.values.length)} of ${formatCount(s.total)} points`).join("; ") + ".");
    } else if (thinned.length) {
      parts.push(`Downsampled for display: ${thinned.length} of ${lines.length} lines, to about ` +
        `${formatCount(entry.chart.width)} points each (min and max kept).`);
    }
    if (this.settings.axis === "epoch" && shown.length < lines.length) parts.push("Lines without epochs are hidden.");
    if (needsTimes(this.settings.axis) && shown.length < lines.length) parts.push("Lines without point times are hidden.");
    const xKey = xMetric(this.settings.axis);
    if (xKey) {
      parts.push(`x: ${xKey} at the same iteration.`);
      if (shown.length < lines.length) parts.push(`Lines without ${xKey} are hidden.`);
    }
    return parts.join(" ");
  }

  /** Redraw every chart from the data already read (grouping or colours changed). */
  redrawAll() {
    for (const entry of this.charts.values()) if (entry.data.length) this.draw(entry);
  }

  /** Re-read every chart (live refresh), keeping each chart's zoom. */
  async refreshAll() {
    await this.refresh(...this.charts.values());
  }

  setAxis(axis) {
    this.settings.axis = axis;
    const { caption, kind } = axisCaption(axis);
    const reads = [];
    for (const entry of this.charts.values()) {
      entry.chart.setXLabel(caption, kind);
      entry.iterations = null;
      const missingTimes = needsTimes(axis) && entry.data.some((s) => !s.times);
      const missingX = Boolean(xMetric(axis)) && entry.xKey !== xMetric(axis);
      if (entry.readRange || missingTimes || missingX || entry.xKey) reads.push(entry);
      else this.draw(entry);
    }
    return this.refresh(...reads);
  }

  setSmoothing(weight) {
    this.settings.smoothing = weight;
    for (const entry of this.charts.values()) entry.chart.setSmoothing(weight);
  }

  setLogScale(logScale) {
    this.settings.logScale = logScale;
    for (const entry of this.charts.values()) entry.chart.setLogScale(logScale);
  }

  setHidden(ids) {
    this.hidden = new Set(ids);
    for (const entry of this.charts.values()) entry.chart.setHidden(this.hidden);
  }

  highlight(id) {
    for (const entry of this.charts.values()) entry.chart.highlight(id);
  }
}

/**
 * The metric filter, axis (step, epoch, times, or another metric: `element.setMetricKeys(keys)`
 * lists those), smoothing and log-scale controls; `onChange(what)` fires on every change.
 */
export function chartControls(settings, onChange) {
  const pressed = () => axisButtons.forEach((b) => {
    b.classList.toggle("active", b.dataset.axis === settings.axis);
    b.setAttribute("aria-pressed", String(b.dataset.axis === settings.axis));
  });
  const axisButtons = AXES.map(([axis, label]) => h("button", {
    type: "button", class: `axis-toggle${settings.axis === axis ? " active" : ""}`,
    dataset: { axis }, "aria-pressed": String(settings.axis === axis),
    onclick: () => {
      settings.axis = axis;
      xSelect.value = "";
      pressed();
      onChange("axis");
    },
  }, label));
  const xSelect = h("select", { name: "x-metric", "aria-label": "x axis: another metric", onchange: () => {
    settings.axis = xSelect.value ? metricAxis(xSelect.value) : "iteration";
    pressed();
    onChange("axis");
  } });
  const setMetricKeys = (keys) => {
    const current = xMetric(settings.axis);
    const all = [...new Set([...keys, ...(current ? [current] : [])])].sort();
    xSelect.replaceChildren(h("option", { value: "" }, "metric…"),
      ...all.map((key) => h("option", { value: key, selected: key === current }, key)));
  };
  setMetricKeys([]);
  const value = h("output", { class: "smoothing-value" }, settings.smoothing.toFixed(2));
  const slider = h("input", {
    type: "range", name: "smoothing", min: 0, max: 0.99, step: 0.01, value: settings.smoothing,
    oninput: () => {
      settings.smoothing = Number(slider.value);
      value.textContent = settings.smoothing.toFixed(2);
      onChange("smoothing");
    },
  });
  const filter = h("input", {
    type: "search", name: "metric-filter", value: settings.filter ?? "", class: "metric-filter",
    "aria-label": "Show only the charts whose metric name contains", placeholder: "Filter charts",
    oninput: () => { settings.filter = filter.value.trim(); onChange("filter"); },
  });
  const log = h("input", {
    type: "checkbox", name: "log-scale", checked: settings.logScale,
    onchange: () => { settings.logScale = log.checked; onChange("logScale"); },
  });
  const element = h("div", { class: "chart-controls" },
    filter,
    h("span", { class: "segmented", role: "group", "aria-label": "x axis" }, "x axis: ", axisButtons, xSelect),
    h("label", { class: "smoothing" }, "Smoothing ", slider, " ", value),
    h("label", { class: "log-scale" }, log, " Log scale"),
    h("span", { class: "muted hint" }, "Drag to zoom (re-read at full resolution), double-click to reset."));
  element.setMetricKeys = setMetricKeys; // the metrics the x axis may be, once they are known
  return element;
}

/** Chart settings read from the URL query (x=epoch|time|relative&smooth=0.6&log=1&metrics=loss). */
export function settingsFromParams(params) {
  const smoothing = Number(params.get("smooth") || 0);
  return {
    axis: knownAxis(params.get("x")),
    smoothing: Number.isFinite(smoothing) ? Math.min(0.99, Math.max(0, smoothing)) : 0,
    logScale: params.get("log") === "1",
    filter: (params.get("metrics") || "").trim(),
  };
}

/** The settings as URL query values (defaults left out). */
export function settingsToParams(settings) {
  return {
    x: settings.axis === "iteration" ? null : settings.axis,
    smooth: settings.smoothing ? settings.smoothing : null,
    log: settings.logScale ? 1 : null,
    metrics: settings.filter || null,
  };
}

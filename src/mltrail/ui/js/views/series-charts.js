// A grid of metric charts whose lines are stored series, shared by the experiment page (one
// line per phase) and the compare view (one line per experiment). Each line is read
// downsampled to about the chart's pixel width.

import { api, experimentPath, query } from "../api.js";
import { LineChart, resizeWithWindow, seriesPoints } from "../charts.js";
import { h } from "../dom.js";
import { formatCount } from "../format.js";

/**
 * Charts keyed by id. `sync(specs)` creates missing charts, re-reads every line and redraws.
 * A spec is `{id, title, yLabel, lines: [{label, colour, project, experiment, key, phase}]}`.
 */
export class SeriesCharts {
  constructor(ctx, settings) {
    this.ctx = ctx;
    this.settings = settings; // {axis, smoothing, logScale}
    this.charts = new Map(); // id -> {chart, spec, data: [series]}
    this.element = h("div", { class: "chart-grid" });
    this.stopResize = resizeWithWindow(() => [...this.charts.values()].map((c) => c.chart));
    ctx.signal.addEventListener("abort", () => this.stopResize());
  }

  async sync(specs) {
    for (const spec of specs) {
      if (!this.charts.has(spec.id)) {
        const chart = new LineChart(this.element, {
          title: spec.title, xLabel: this.settings.axis, yLabel: spec.yLabel,
          smoothing: this.settings.smoothing, logScale: this.settings.logScale,
        });
        this.charts.set(spec.id, { chart, spec, data: [] });
      }
      this.charts.get(spec.id).spec = spec;
    }
    await Promise.all(specs.map((spec) => this.refresh(this.charts.get(spec.id))));
  }

  async refresh(entry) {
    const maxPoints = entry.chart.width;
    entry.data = await Promise.all(entry.spec.lines.map((line) => api(
      experimentPath(line.project, line.experiment, "/series/read") +
        query({ key: line.key, phase: line.phase, max_points: maxPoints }),
      { signal: this.ctx.signal })));
    this.draw(entry);
  }

  draw(entry) {
    const { axis } = this.settings;
    const lines = entry.spec.lines.map((line, i) => ({
      label: line.label, colour: line.colour, ...seriesPoints(entry.data[i], axis),
    }));
    const shown = lines.filter((line) => line.xs.length);
    const notes = entry.data
      .map((s, i) => (s.downsampled ? `${entry.spec.lines[i].label}: ${formatCount(s.values.length)} ` +
        `of ${formatCount(s.total)} points` : null))
      .filter(Boolean);
    let note = notes.length ? `Downsampled for display: ${notes.join("; ")}` : "";
    if (axis === "epoch" && shown.length < lines.length) note = `${note} Lines without epochs are hidden.`.trim();
    entry.chart.setLines(shown, note);
  }

  setAxis(axis) {
    this.settings.axis = axis;
    for (const entry of this.charts.values()) {
      entry.chart.setXLabel(axis);
      this.draw(entry);
    }
  }

  setSmoothing(weight) {
    this.settings.smoothing = weight;
    for (const entry of this.charts.values()) entry.chart.setSmoothing(weight);
  }

  setLogScale(logScale) {
    this.settings.logScale = logScale;
    for (const entry of this.charts.values()) entry.chart.setLogScale(logScale);
  }
}

/** The axis / smoothing / log-scale controls; `onChange(settings)` fires on every change. */
export function chartControls(settings, onChange) {
  const axisButtons = ["iteration", "epoch"].map((axis) => h("button", {
    type: "button", class: `axis-toggle${settings.axis === axis ? " active" : ""}`,
    dataset: { axis }, "aria-pressed": String(settings.axis === axis),
    onclick: () => {
      settings.axis = axis;
      axisButtons.forEach((b) => {
        b.classList.toggle("active", b.dataset.axis === axis);
        b.setAttribute("aria-pressed", String(b.dataset.axis === axis));
      });
      onChange("axis");
    },
  }, axis === "iteration" ? "Iteration" : "Epoch"));
  const value = h("output", { class: "smoothing-value" }, settings.smoothing.toFixed(2));
  const slider = h("input", {
    type: "range", name: "smoothing", min: 0, max: 0.99, step: 0.01, value: settings.smoothing,
    oninput: () => {
      settings.smoothing = Number(slider.value);
      value.textContent = settings.smoothing.toFixed(2);
      onChange("smoothing");
    },
  });
  const log = h("input", {
    type: "checkbox", name: "log-scale", checked: settings.logScale,
    onchange: () => { settings.logScale = log.checked; onChange("logScale"); },
  });
  return h("div", { class: "chart-controls" },
    h("span", { class: "segmented", role: "group", "aria-label": "x axis" }, "x axis: ", axisButtons),
    h("label", { class: "smoothing" }, "Smoothing ", slider, " ", value),
    h("label", { class: "log-scale" }, log, " Log scale"),
    h("span", { class: "muted hint" }, "Drag to zoom, double-click to reset."));
}

/** Chart settings read from the URL query (x=epoch&smooth=0.6&log=1). */
export function settingsFromParams(params) {
  const smoothing = Number(params.get("smooth") || 0);
  return {
    axis: params.get("x") === "epoch" ? "epoch" : "iteration",
    smoothing: Number.isFinite(smoothing) ? Math.min(0.99, Math.max(0, smoothing)) : 0,
    logScale: params.get("log") === "1",
  };
}

/** The settings as URL query values (defaults left out). */
export function settingsToParams(settings) {
  return {
    x: settings.axis === "epoch" ? "epoch" : null,
    smooth: settings.smoothing ? settings.smoothing : null,
    log: settings.logScale ? 1 : null,
  };
}

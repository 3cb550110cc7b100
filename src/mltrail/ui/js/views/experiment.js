// The experiment page: header (status, live duration, actions), for a failed or crashed run
// the end of its log right under the header, metric charts (one per key, a line per phase),
// per-iteration external metrics, custom charts, tables (hyperparameters, ex_ metrics,
// environment, source, weights hashes), artifacts (views/artifacts.js) and the log panel. A live
// experiment refreshes every 2 s.

import { api, experimentPath, isTransient } from "../api.js";
import { replaceQuery } from "../app.js";
import { customChartLines } from "../chart-data.js";
import { LineChart, PHASE_COLOURS, resizeWithWindow } from "../charts.js";
import { h, keyValueTable, link, setChildren, sleep } from "../dom.js";
import { formatTime, formatValue } from "../format.js";
import { LogPanel, failureTail, lineText } from "../logs.js";
import { LIFECYCLE, editForm, runLifecycle, stateOf } from "../lifecycle.js";
import { renderMarkdown } from "../markdown.js";
import { actionsMenu } from "../menu.js";
import { colourAt } from "../palette.js";
import { PanelLayout } from "../panels.js";
import { durationText, isFailure, isFinal, statusPill, tickDurations } from "../status.js";
import { ArtifactsPanel, weightsHashCell } from "./artifacts.js";
import { SeriesCharts, chartControls, settingsFromParams, settingsToParams } from "./series-charts.js";
import { SystemCharts, splitSystemSpecs } from "./system-charts.js";

const REFRESH_MS = 2000;
const PHASE_ORDER = ["train", "validation", "test"];

/** Render the experiment page and keep it live while the experiment runs. */
export async function renderExperiment(ctx, projectId, experimentId) {
  const [project, experiment] = await Promise.all([
    api(`/projects/${projectId}`, { signal: ctx.signal }),
    api(experimentPath(projectId, experimentId), { signal: ctx.signal }),
  ]);
  const view = new ExperimentView(ctx, project, experiment);
  view.mount();
  await view.load();
  view.logs.start().catch((error) => ctx.fail(error));
  view.logs.caughtUp.then(() => view.renderFailure());
  view.followLive().catch((error) => ctx.fail(error));
}

function metricSpecs(experiment, summaries) {
  const byKey = new Map();
  for (const s of summaries) {
    if (!byKey.has(s.key)) byKey.set(s.key, []);
    byKey.get(s.key).push(s.phase);
  }
  return [...byKey.keys()].sort().map((key) => ({
    id: key, title: key, yLabel: key,
    lines: byKey.get(key)
      .sort((a, b) => PHASE_ORDER.indexOf(a) - PHASE_ORDER.indexOf(b))
      .map((phase) => ({
        id: phase, label: phase, colour: PHASE_COLOURS[phase] || colourAt(4),
        project: experiment.project_id, experiment: experiment.experiment_id, key, phase,
        startedAt: experiment.started_at ?? experiment.created_at,
      })),
  }));
}

class ExperimentView {
  constructor(ctx, project, experiment) {
    this.ctx = ctx;
    this.project = project;
    this.experiment = experiment;
    this.settings = settingsFromParams(ctx.params);
    const layout = new PanelLayout(`${project.id}/experiment`);
    this.metricCharts = new SeriesCharts(ctx, this.settings, { layout });
    this.systemCharts = new SystemCharts(ctx, this.settings, { layout });
    this.iterationCharts = new Map();
    this.customCharts = new Map();
    this.iterationGrid = h("div", { class: "chart-grid" });
    this.customGrid = h("div", { class: "chart-grid" });
    this.iterationSection = h("section", { class: "iteration-metrics", hidden: true },
      h("h2", {}, "External metrics per iteration"), this.iterationGrid);
    this.customSection = h("section", { class: "custom-charts", hidden: true },
      h("h2", {}, "Custom charts"), this.customGrid);
    this.header = h("div", { class: "experiment-head" });
    this.failure = h("section", { class: "failure", hidden: true, "aria-live": "polite" });
    this.liveState = h("p", { class: "warning live-state", role: "status" });
    this.actionsMenu = actionsMenu(() => this.actions(), { signal: ctx.signal });
    this.tables = h("div", { class: "tables" });
    this.logs = new LogPanel(ctx, experiment.project_id, experiment.experiment_id,
      { name: `${project.display_name}-${experiment.experiment_id}` });
    this.artifacts = new ArtifactsPanel(ctx, experiment.project_id, experiment.experiment_id);
    const stop = resizeWithWindow(() => [...this.iterationCharts.values(), ...this.customCharts.values()]);
    ctx.signal.addEventListener("abort", stop);
  }

  path(rest = "") {
    return experimentPath(this.experiment.project_id, this.experiment.experiment_id, rest);
  }

  mount() {
    const { project } = this;
    this.controls = chartControls(this.settings, (what) => this.onSettings(what));
    this.ctx.setTitle(this.experiment.display_name);
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumbs" }, link("/", "Projects"), " / ",
        link(`/projects/${project.id}`, project.display_name), " / ", this.experiment.display_name),
      this.header,
      this.failure,
      this.liveState,
      this.controls,
      h("section", { class: "metrics" }, h("h2", {}, "Metrics"), this.metricCharts.element),
      this.systemCharts.element,
      this.iterationSection,
      this.customSection,
      this.tables,
      this.artifacts.element,
      this.logs.element,
    );
    tickDurations(this.header, this.ctx.signal);
    this.renderHeader();
    this.renderTables([]);
  }

  onSettings(what) {
    replaceQuery(settingsToParams(this.settings));
    const others = [...this.iterationCharts.values(), ...this.customCharts.values()];
    if (what === "axis") {
      for (const charts of [this.metricCharts, this.systemCharts.charts]) {
        charts.setAxis(this.settings.axis).catch((error) => this.ctx.fail(error));
      }
      this.drawIterationMetrics();
    } else if (what === "filter") {
      this.metricCharts.setFilter(this.settings.filter);
      this.systemCharts.charts.setFilter(this.settings.filter);
    } else if (what === "smoothing") {
      this.metricCharts.setSmoothing(this.settings.smoothing);
      this.systemCharts.charts.setSmoothing(this.settings.smoothing);
      [...this.iterationCharts.values()].forEach((c) => c.setSmoothing(this.settings.smoothing));
    } else {
      this.metricCharts.setLogScale(this.settings.logScale);
      this.systemCharts.charts.setLogScale(this.settings.logScale);
      others.forEach((c) => c.setLogScale(this.settings.logScale));
    }
  }

  /** Read everything once (also called on every live refresh). */
  async load() {
    const signal = this.ctx.signal;
    const [summaries, iterationMetrics, charts, weights] = await Promise.all([
      api(this.path("/series"), { signal }),
      api(this.path("/iteration-metrics"), { signal }),
      api(this.path("/charts"), { signal }),
      api(this.path("/weights"), { signal }),
    ]);
    this.summaries = summaries;
    this.iterationMetrics = iterationMetrics;
    const [training, system] = splitSystemSpecs(metricSpecs(this.experiment, summaries));
    this.controls.setMetricKeys(training.map((spec) => spec.id));
    await Promise.all([this.metricCharts.sync(training), this.systemCharts.sync(system)]);
    if (!training.length && !this.metricCharts.element.querySelector(".empty")) {
      this.metricCharts.element.append(h("p", { class: "muted empty" },
        system.length ? "No training metrics recorded yet." : "No metrics recorded yet."));
    } else if (training.length) {
      this.metricCharts.element.querySelector(".empty")?.remove();
    }
    this.drawIterationMetrics();
    this.drawCustomCharts(charts);
    this.renderTables(weights);
    await this.artifacts.load();
  }

  async followLive() {
    while (!isFinal(this.experiment.status) && !this.ctx.signal.aborted) {
      await sleep(REFRESH_MS, this.ctx.signal);
      if (this.ctx.signal.aborted) return;
      try {
        this.experiment = await api(this.path(), { signal: this.ctx.signal });
        this.renderHeader();
        await this.load();
        this.liveState.textContent = "";
      } catch (error) {
        if (!isTransient(error)) throw error;
        this.liveState.textContent = `Connection problem (${error.message}); retrying…`;
      }
    }
    await this.logs.caughtUp;
    this.renderFailure();
  }

  actions() {
    const e = this.experiment;
    const live = e.status === "running" || e.status === "queued";
    return [
      {
        id: "stop", label: e.stop_requested ? "Stop requested" : "Stop run", enabled: live && !e.stop_requested,
        title: live ? "Ask the run to stop (its next log call raises ExperimentStopped)" : "The run has ended",
        run: () => this.stop(),
      },
      { id: "edit", label: "Edit name, tags, notes", enabled: true, run: () => this.edit(true) },
      ...Object.entries(LIFECYCLE).map(([id, action]) => ({
        id, label: action.label, enabled: action.from.includes(stateOf(e)),
        title: action.from.includes(stateOf(e)) ? null : `Not for an experiment that is ${stateOf(e)}`,
        run: () => this.lifecycle(id),
      })),
      { id: "download-log", label: "Download log", enabled: true, run: () => this.logs.download() },
    ];
  }

  edit(on) {
    this.editing = on;
    this.renderHeader();
    if (on) this.header.querySelector(".edit-form input")?.focus();
  }

  async lifecycle(action) {
    this.experiment = await runLifecycle(action, this.experiment.project_id, this.experiment.experiment_id, this.ctx.signal);
    this.renderHeader();
  }

  async stop() {
    try {
      this.experiment = await api(this.path("/stop"), { method: "POST", signal: this.ctx.signal });
    } catch (error) {
      if (error.status === 409) this.experiment = await api(this.path(), { signal: this.ctx.signal });
      else throw error;
    }
    this.renderHeader();
  }

  renderHeader() {
    const e = this.experiment;
    const facts = [
      ["Experiment", `#${e.experiment_id}`],
      ["Created", formatTime(e.created_at)],
      ["Started", formatTime(e.started_at)],
      ["Ended", formatTime(e.ended_at)],
      ["Duration", e.started_at ? durationText(e) : ""],
      ["Last heartbeat", isFinal(e.status) && e.status !== "crashed" ? "" : formatTime(e.last_heartbeat)],
    ].filter(([, v]) => v);
    const state = stateOf(e);
    const form = this.editing ? editForm(e, {
      signal: this.ctx.signal,
      onSaved: (record) => { this.experiment = record; this.ctx.setTitle(record.display_name); this.edit(false); },
      onCancel: () => this.edit(false),
    }) : null;
    setChildren(this.header,
      h("div", { class: "title-row" },
        h("h1", {}, e.display_name, " ", statusPill(e.status)),
        this.actionsMenu.element),
      state === "active" ? null : h("p", { class: `state-banner state-${state}`, role: "status" },
        state === "deleted" ? `This experiment is in the trash${e.deleted_at ? ` since ${formatTime(e.deleted_at)}` : ""}: hidden from lists, removed for good when the trash's retention ends.`
          : "This experiment is archived: hidden from lists, nothing is lost.", " ",
        h("button", { type: "button", class: "restore", onclick: () => this.lifecycle("restore").catch((error) => this.ctx.fail(error)) }, "Restore")),
      form,
      !form && e.description ? h("p", { class: "description" }, e.description) : null,
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v)))),
      !form && e.tags?.length ? h("p", { class: "tags" }, e.tags.map((t) => h("span", { class: "tag" }, t))) : null,
      !form && e.notes ? h("section", { class: "notes", "aria-label": "Notes" }, h("h2", {}, "Notes"),
        h("div", { class: "notes-text markdown" }, renderMarkdown(e.notes))) : null,
      e.stop_requested && !isFinal(e.status) ? h("p", { class: "warning stop-requested" }, "A stop was requested.") : null,
    );
  }

  /** A failed or crashed run: what happened, and the end of its log, at the top of the page. */
  renderFailure() {
    const e = this.experiment;
    if (!isFailure(e.status)) {
      this.failure.hidden = true;
      return;
    }
    const tail = failureTail(this.logs.tail);
    const what = e.status === "crashed"
      ? "This run crashed: its heartbeats stopped (the process died or lost its connection)."
      : "This run failed.";
    const when = e.ended_at ? ` Ended ${formatTime(e.ended_at)}.`
      : e.status === "crashed" && e.last_heartbeat ? ` No heartbeat since ${formatTime(e.last_heartbeat)}.` : "";
    setChildren(this.failure,
      h("h2", {}, e.status === "crashed" ? "Crashed" : "Failed"),
      h("p", {}, what, when),
      tail.length
        ? [h("p", { class: "muted" }, "End of the log:"),
          h("pre", { class: "failure-log", tabindex: 0 }, tail.map(lineText).join("\n"))]
        : h("p", { class: "muted" }, "The run left no log lines."));
    this.failure.hidden = false;
  }

  drawIterationMetrics() {
    const byKey = new Map();
    // per-iteration ex_ metrics carry iterations and epochs, no point times
    const xField = this.settings.axis === "epoch" ? "epoch" : "iteration";
    for (const m of this.iterationMetrics || []) {
      const value = typeof m.value === "boolean" ? Number(m.value) : m.value;
      if (typeof value !== "number" || m[xField] === null || m[xField] === undefined) continue;
      if (!byKey.has(m.key)) byKey.set(m.key, new Map());
      byKey.get(m.key).set(m[xField], value);
    }
    this.iterationSection.hidden = !(this.iterationMetrics || []).length;
    for (const [i, key] of [...byKey.keys()].sort().entries()) {
      if (!this.iterationCharts.has(key)) {
        this.iterationCharts.set(key, new LineChart(this.iterationGrid, {
          title: key, subtitle: "per iteration", xLabel: xField, xKind: "integer", yLabel: key,
          smoothing: this.settings.smoothing, logScale: this.settings.logScale,
        }));
      }
      const chart = this.iterationCharts.get(key);
      if (chart.options.xLabel !== xField) chart.setXLabel(xField);
      const points = [...byKey.get(key)].sort((a, b) => a[0] - b[0]);
      chart.setLines([{
        label: key, colour: colourAt(i + 3),
        xs: points.map((p) => p[0]), ys: points.map((p) => p[1]),
      }]);
    }
  }

  drawCustomCharts(charts) {
    this.customSection.hidden = !charts.length;
    for (const chart of [...charts].sort((a, b) => a.spec.name.localeCompare(b.spec.name))) {
      const { options, lines } = customChartLines(chart.spec);
      const known = this.customCharts.get(chart.chart_id);
      if (known && known.updatedAt === chart.updated_at) continue;
      known?.destroy();
      const drawn = new LineChart(this.customGrid, { ...options, logScale: this.settings.logScale });
      drawn.updatedAt = chart.updated_at;
      drawn.setLines(lines);
      this.customCharts.set(chart.chart_id, drawn);
    }
  }

  renderTables(weights) {
    const e = this.experiment;
    const entries = (obj) => Object.entries(obj || {}).sort(([a], [b]) => a.localeCompare(b));
    const summaryRows = (this.summaries || []).map((s) => [`${s.phase}/${s.key}`,
      `last ${formatValue(s.last)} · min ${formatValue(s.min)} · max ${formatValue(s.max)} · ${s.count} points`]);
    // a live experiment re-renders every 2 s: the weights card is kept while its hashes stay the
    // same, so a hash the user opened keeps its list of holders and checkpoints open
    const weightsKey = JSON.stringify(weights);
    if (weightsKey !== this.weightsKey) {
      this.weightsKey = weightsKey;
      this.weightsCard = card("Weights hashes", "weights", this.weightsTable(weights));
    }
    this.tables.replaceChildren(
      card("Hyperparameters", "hyperparameters", keyValueTable(entries(e.hyperparameters), { format: formatValue })),
      card("External metrics", "ex-metrics", keyValueTable(entries(e.ex_metrics), { format: formatValue })),
      card("Metric summaries", "metric-summaries", keyValueTable(summaryRows)),
      card("Environment", "environment", keyValueTable(entries(e.environment), { format: formatValue })),
      card("Source", "source", keyValueTable(entries(e.source), { format: formatValue })),
      this.weightsCard,
    );
  }

  weightsTable(weights) {
    if (!weights.length) return h("p", { class: "muted" }, "No weights hashes recorded.");
    return h("div", { class: "table-scroll", tabindex: 0 }, h("table", { class: "data weights" },
      h("thead", {}, h("tr", {}, ["Weights hash", "Iteration", "Epoch", "Checkpoint", "Recorded"].map((t) => h("th", {}, t)))),
      h("tbody", {}, weights.map((w) => h("tr", {},
        h("td", { class: "hash" }, weightsHashCell(w.weights_hash, this.ctx.signal)),
        h("td", { class: "num" }, formatValue(w.iteration)),
        h("td", { class: "num" }, formatValue(w.epoch)),
        h("td", { class: "checkpoint" }, w.checkpoint || ""),
        h("td", {}, formatTime(w.created_at)))))));
  }
}

function card(title, name, content) {
  return h("section", { class: `table-card ${name}` }, h("h2", {}, title), content);
}

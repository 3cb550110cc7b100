// Compare: the selected experiments' metrics overlaid (one chart per phase/key, a line per
// run) under one shared legend, runs coloured by run or by a hyperparameter (optionally drawn
// as one mean line with a min/max band per value), hyperparameters against metrics
// (parallel coordinates, scatter), and the runs side by side with differences highlighted.

import { ApiError, api, query } from "../api.js";
import { replaceQuery } from "../app.js";
import { h, link, setChildren } from "../dom.js";
import { groupLines, groupRuns, groupValue } from "../groups.js";
import { HparamPlots } from "../hpplots.js";
import { colourAt } from "../palette.js";
import { PanelLayout } from "../panels.js";
import { savedViewsMenu } from "../saved-views.js";
import { buildColumns } from "../table.js";
import { comparisonTable, experimentLabel } from "./compare-table.js";
import { SeriesCharts, chartControls, settingsFromParams, settingsToParams } from "./series-charts.js";
import { SystemCharts, splitSystemSpecs } from "./system-charts.js";

const SEARCH_MAX = 1000; // the server's largest page

/** One chart per phase/key any run has (from the runs' last values: no extra request). */
function chartSpecs(experiments, colourOf) {
  const byName = new Map();
  for (const e of experiments) {
    for (const name of Object.keys(e.metrics || {})) {
      const cut = name.indexOf("/");
      const [phase, key] = [name.slice(0, cut), name.slice(cut + 1)];
      if (!byName.has(name)) byName.set(name, { id: name, title: name, yLabel: key, lines: [] });
      byName.get(name).lines.push({
        id: e.experiment_id, label: experimentLabel(e), colour: colourOf(e),
        project: e.project_id, experiment: e.experiment_id, key, phase, startedAt: e.started_at ?? e.created_at,
      });
    }
  }
  return [...byName.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * The experiments of `ids`, in that order, with one search request per 1,000 of them (`id in
 * (...)`, archived and trashed ones included), not one request per run.
 * @throws {ApiError} 404 naming the ids the project does not hold
 */
async function readExperiments(projectId, ids, signal) {
  const found = new Map();
  for (let at = 0; at < ids.length; at += SEARCH_MAX) {
    const part = ids.slice(at, at + SEARCH_MAX);
    const page = await api(`/projects/${projectId}/experiments` + query({
      filter: `id in (${part.join(", ")})`, include: "all", limit: part.length,
    }), { signal });
    for (const e of page.items) found.set(e.experiment_id, e);
  }
  const missing = ids.filter((id) => !found.has(id));
  if (missing.length) throw new ApiError(404, `Project ${projectId} has no experiment ${missing.join(", ")}.`);
  return ids.map((id) => found.get(id));
}

/** Render the compare view for `?ids=1,2,3`. */
export async function renderCompare(ctx, projectId) {
  const ids = [...new Set((ctx.params.get("ids") || "").split(",").map(Number).filter((n) => n > 0))];
  const [project, experiments] = await Promise.all([
    api(`/projects/${projectId}`, { signal: ctx.signal }), readExperiments(projectId, ids, ctx.signal)]);
  ctx.setTitle(`Compare ${ids.length} experiments`);
  const view = new CompareView(ctx, project, experiments);
  view.mount();
  const [training, system] = splitSystemSpecs(chartSpecs(experiments, (e) => view.colourOf(e)));
  view.controls.setMetricKeys([...new Set(training.map((spec) => spec.yLabel))]);
  await Promise.all([view.charts.sync(training), view.system.sync(system)]);
}

class CompareView {
  constructor(ctx, project, experiments) {
    this.ctx = ctx;
    this.project = project;
    this.experiments = experiments;
    this.settings = settingsFromParams(ctx.params);
    this.columns = buildColumns(experiments);
    const keys = this.columns.filter((c) => c.group === "Hyperparameters" && c.varies).map((c) => c.label);
    this.colourKeys = [...keys, "status"];
    const wanted = ctx.params.get("colour");
    this.colourKey = this.colourKeys.includes(wanted) ? wanted : "";
    this.grouped = Boolean(this.colourKey) && ctx.params.get("group") === "1";
    this.hidden = new Set();
    this.runIndex = new Map(experiments.map((e, i) => [e.experiment_id, i]));
    const chartOptions = {
      legend: false, shape: (lines) => (this.grouped ? groupLines(lines, this.groups) : lines),
      layout: new PanelLayout(`${project.id}/compare`),
    };
    this.charts = new SeriesCharts(ctx, this.settings, chartOptions);
    this.system = new SystemCharts(ctx, this.settings, chartOptions);
    this.allCharts = [this.charts, this.system.charts];
    this.plots = new HparamPlots({ labelOf: experimentLabel, colourOf: (e) => this.colourOf(e) });
    this.legend = h("div", { class: "shared-legend", role: "group", "aria-label": "Runs shown" });
    this.onlyDiff = h("input", { type: "checkbox", name: "only-differences", checked: ctx.params.get("diff") === "1",
      onchange: () => { this.renderTable(); this.saveState(); } });
    this.tableSlot = h("div", { class: "table-scroll compare-scroll", tabindex: 0, role: "region", "aria-label": "Side by side" });
    this.regroup();
  }

  /** The colour of a run: its own, or its group's. */
  colourOf(e) {
    if (!this.colourKey) return colourAt(this.runIndex.get(e.experiment_id) ?? 0);
    const value = groupValue(e, this.colourKey);
    return this.groups.find((g) => g.value === value)?.colour ?? colourAt(0);
  }

  regroup() {
    this.groups = this.colourKey ? groupRuns(this.experiments, this.colourKey) : [];
  }

  saveState() {
    replaceQuery({
      ids: this.experiments.map((e) => e.experiment_id).join(","), ...settingsToParams(this.settings),
      diff: this.onlyDiff.checked ? 1 : null, colour: this.colourKey || null, group: this.grouped ? 1 : null,
    });
  }

  groupControls() {
    const colour = h("select", { name: "colour-by", onchange: () => {
      this.colourKey = colour.value;
      group.disabled = !this.colourKey;
      if (!this.colourKey) group.checked = false;
      this.grouped = group.checked;
      this.recolour();
    } },
    h("option", { value: "" }, "run"),
    this.colourKeys.map((key) => h("option", { value: key, selected: key === this.colourKey }, key)));
    const group = h("input", { type: "checkbox", name: "group", checked: this.grouped, disabled: !this.colourKey,
      onchange: () => { this.grouped = group.checked; this.recolour(); } });
    return h("div", { class: "chart-controls group-controls" },
      h("label", {}, "Colour by ", colour),
      h("label", {}, group, " Group: mean line with min/max band"));
  }

  /** Colours or grouping changed: new colours on every line, legend, plots and table. */
  recolour() {
    this.regroup();
    const specs = [...this.charts.charts.values()].map((entry) => entry.spec).concat(this.system.specs);
    for (const spec of specs) {
      for (const line of spec.lines) line.colour = this.colourOf(this.experiments[this.runIndex.get(line.id)]);
    }
    this.allCharts.forEach((charts) => charts.redrawAll());
    this.renderLegend();
    this.renderTable();
    this.plots.update(this.experiments, this.columns);
    this.saveState();
  }

  legendItem(id, label, colour, detail) {
    const mark = h("span", { class: "swatch", "aria-hidden": "true" });
    mark.style.background = colour;
    return h("button", {
      type: "button", class: "legend-chip", dataset: { id, colour }, "aria-pressed": String(!this.hidden.has(id)),
      title: detail ?? label,
      onclick: (event) => {
        if (this.hidden.has(id)) this.hidden.delete(id);
        else this.hidden.add(id);
        event.currentTarget.setAttribute("aria-pressed", String(!this.hidden.has(id)));
        this.allCharts.forEach((charts) => charts.setHidden(this.hidden));
      },
      onmouseenter: () => this.allCharts.forEach((charts) => charts.highlight(id)),
      onmouseleave: () => this.allCharts.forEach((charts) => charts.highlight(null)),
    }, mark, h("span", { class: "legend-label" }, label));
  }

  renderLegend() {
    const items = this.grouped
      ? this.groups.map((g) => this.legendItem(`group:${g.value}`, `${g.label} (${g.ids.length})`, g.colour))
      : this.experiments.map((e) => this.legendItem(e.experiment_id, experimentLabel(e), this.colourOf(e),
        this.colourKey ? `${experimentLabel(e)}: ${this.colourKey}=${groupValue(e, this.colourKey)}` : null));
    this.legend.replaceChildren(...items);
  }

  renderTable() {
    this.tableSlot.replaceChildren(comparisonTable(this.experiments, (e) => this.colourOf(e), this.onlyDiff.checked));
  }

  mount() {
    const { project, experiments } = this;
    const controls = this.controls = chartControls(this.settings, (what) => {
      this.saveState();
      for (const charts of this.allCharts) {
        if (what === "axis") charts.setAxis(this.settings.axis).catch((error) => this.ctx.fail(error));
        else if (what === "filter") charts.setFilter(this.settings.filter);
        else if (what === "smoothing") charts.setSmoothing(this.settings.smoothing);
        else charts.setLogScale(this.settings.logScale);
      }
    });
    const plotsPanel = h("details", { class: "plots-panel", open: true },
      h("summary", {}, "Hyperparameters vs metrics: parallel coordinates and scatter"), this.plots.element);
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumbs" }, link("/", "Projects"), " / ",
        link(`/projects/${project.id}`, project.display_name), " / Compare"),
      h("div", { class: "page-head" }, h("h1", {}, `Compare ${experiments.length} experiments`),
        savedViewsMenu(project.id, { signal: this.ctx.signal }).element),
      experiments.length < 2 ? h("p", { class: "muted" }, "Select at least two experiments in the table to compare them.") : null,
      controls,
      this.groupControls(),
      h("section", { class: "metrics" }, h("h2", {}, "Metrics"), this.legend, this.charts.element),
      this.system.element,
      h("section", { class: "hparams" }, plotsPanel),
      h("section", { class: "hyperparameters" },
        h("div", { class: "section-head" }, h("h2", {}, "Side by side"),
          h("label", {}, this.onlyDiff, " Only differences")),
        this.tableSlot),
    );
    this.renderLegend();
    this.renderTable();
    this.plots.update(experiments, this.columns);
    this.saveState();
  }
}

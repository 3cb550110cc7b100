// Compare: the selected experiments' metrics overlaid (one chart per phase/key, a line per
// experiment) and their hyperparameters side by side with differing rows highlighted.

import { api, experimentPath } from "../api.js";
import { replaceQuery } from "../app.js";
import { PALETTE } from "../charts.js";
import { h, link, setChildren } from "../dom.js";
import { formatDuration, formatValue } from "../format.js";
import { SeriesCharts, chartControls, settingsFromParams, settingsToParams } from "./series-charts.js";

function experimentLabel(e) {
  return `#${e.experiment_id} ${e.display_name}`;
}

function chartSpecs(experiments, summaries) {
  const byName = new Map();
  experiments.forEach((e, i) => {
    for (const s of summaries[i]) {
      const name = `${s.phase}/${s.key}`;
      if (!byName.has(name)) byName.set(name, { id: name, title: name, yLabel: s.key, lines: [] });
      byName.get(name).lines.push({
        label: experimentLabel(e), colour: PALETTE[i % PALETTE.length],
        project: e.project_id, experiment: e.experiment_id, key: s.key, phase: s.phase,
      });
    }
  });
  return [...byName.values()].sort((a, b) => a.id.localeCompare(b.id));
}

function sameValues(values) {
  const texts = values.map((v) => (v === undefined ? "\u0000missing" : JSON.stringify(v)));
  return texts.every((t) => t === texts[0]);
}

function comparisonRows(experiments) {
  const rows = [];
  const section = (title, pick) => {
    const keys = new Set();
    experiments.forEach((e) => Object.keys(pick(e) || {}).forEach((k) => keys.add(k)));
    if (!keys.size) return;
    rows.push({ heading: title });
    for (const key of [...keys].sort()) {
      rows.push({ key, values: experiments.map((e) => (pick(e) || {})[key]) });
    }
  };
  rows.push({ heading: "Experiment" });
  rows.push({ key: "status", values: experiments.map((e) => e.status) });
  rows.push({ key: "duration", values: experiments.map((e) => e.duration), format: formatDuration });
  section("Hyperparameters", (e) => e.hyperparameters);
  section("Metrics (last value)", (e) => e.metrics);
  section("External metrics", (e) => e.ex_metrics);
  return rows;
}

function comparisonTable(experiments, onlyDifferences) {
  const rows = comparisonRows(experiments);
  return h("table", { class: "data compare-table" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), experiments.map((e, i) => h("th", {},
      h("span", { class: "swatch", dataset: { colour: i % PALETTE.length } }),
      link(`/projects/${e.project_id}/experiments/${e.experiment_id}`, experimentLabel(e)))))),
    h("tbody", {}, rows.map((row) => {
      if (row.heading) {
        return h("tr", { class: "group" }, h("th", { colspan: experiments.length + 1 }, row.heading));
      }
      const differs = !sameValues(row.values);
      if (onlyDifferences && !differs) return null;
      const format = row.format || formatValue;
      return h("tr", { class: differs ? "differs" : "same", dataset: { key: row.key } },
        h("th", {}, row.key),
        row.values.map((v) => h("td", { class: v === undefined ? "missing" : null },
          v === undefined ? "—" : format(v))));
    })));
}

/** Render the compare view for `?ids=1,2,3`. */
export async function renderCompare(ctx, projectId) {
  const ids = [...new Set((ctx.params.get("ids") || "").split(",").map(Number).filter((n) => n > 0))];
  const project = await api(`/projects/${projectId}`, { signal: ctx.signal });
  const experiments = await Promise.all(ids.map((id) => api(experimentPath(projectId, id), { signal: ctx.signal })));
  const summaries = await Promise.all(ids.map((id) => api(experimentPath(projectId, id, "/series"), { signal: ctx.signal })));
  ctx.setTitle(`Compare ${ids.length} experiments`);
  const settings = settingsFromParams(ctx.params);
  const charts = new SeriesCharts(ctx, settings);
  const onlyDiff = h("input", { type: "checkbox", name: "only-differences", checked: ctx.params.get("diff") === "1" });
  const tableSlot = h("div", { class: "table-scroll" }, comparisonTable(experiments, onlyDiff.checked));
  const saveState = () => replaceQuery({ ids: ids.join(","), ...settingsToParams(settings), diff: onlyDiff.checked ? 1 : null });
  onlyDiff.addEventListener("change", () => {
    tableSlot.replaceChildren(comparisonTable(experiments, onlyDiff.checked));
    saveState();
  });
  const controls = chartControls(settings, (what) => {
    saveState();
    if (what === "axis") charts.setAxis(settings.axis);
    else if (what === "smoothing") charts.setSmoothing(settings.smoothing);
    else charts.setLogScale(settings.logScale);
  });
  setChildren(ctx.main,
    h("nav", { class: "breadcrumbs" }, link("/", "Projects"), " / ",
      link(`/projects/${project.id}`, project.display_name), " / Compare"),
    h("h1", {}, `Compare ${experiments.length} experiments`),
    experiments.length < 2 ? h("p", { class: "muted" }, "Select at least two experiments in the table to compare them.") : null,
    controls,
    h("section", { class: "metrics" }, h("h2", {}, "Metrics"), charts.element),
    h("section", { class: "hyperparameters" },
      h("div", { class: "section-head" }, h("h2", {}, "Side by side"),
        h("label", {}, onlyDiff, " Only differences")),
      tableSlot),
  );
  await charts.sync(chartSpecs(experiments, summaries));
}

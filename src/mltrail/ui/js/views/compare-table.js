// The compare view's side-by-side table: one column per run, one row per field,
// hyperparameter, metric (last value) and ex_ metric; rows that differ are highlighted; the
// first column (the names) and the header row stay pinned while the table scrolls.

import { h, link } from "../dom.js";
import { formatValue } from "../format.js";
import { runDuration } from "../status.js";
import { formatDuration } from "../format.js";

export function experimentLabel(e) {
  return `#${e.experiment_id} ${e.display_name}`;
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
    for (const key of [...keys].sort()) rows.push({ key, values: experiments.map((e) => (pick(e) || {})[key]) });
  };
  rows.push({ heading: "Experiment" });
  rows.push({ key: "status", values: experiments.map((e) => e.status) });
  rows.push({ key: "duration", values: experiments.map((e) => runDuration(e)), format: formatDuration });
  section("Hyperparameters", (e) => e.hyperparameters);
  section("Metrics (last value)", (e) => e.metrics);
  section("External metrics", (e) => e.ex_metrics);
  return rows;
}

/**
 * The table.
 * @param {Array} experiments the runs, in column order
 * @param {(e) => string} colourOf each run's colour (its swatch)
 * @param {boolean} onlyDifferences hide rows where every run agrees
 */
export function comparisonTable(experiments, colourOf, onlyDifferences) {
  const rows = comparisonRows(experiments);
  const swatch = (e) => {
    const el = h("span", { class: "swatch", "aria-hidden": "true" });
    el.style.background = colourOf(e);
    return el;
  };
  return h("table", { class: "data compare-table" },
    h("thead", {}, h("tr", {}, h("th", { class: "pinned-key", scope: "col" }, "Field"), experiments.map((e) => h("th", {
      scope: "col", class: "run", title: experimentLabel(e),
    }, swatch(e), link(`/projects/${e.project_id}/experiments/${e.experiment_id}`, experimentLabel(e)))))),
    h("tbody", {}, rows.map((row) => {
      if (row.heading) {
        return h("tr", { class: "group" }, h("th", { class: "pinned-key", scope: "rowgroup" }, row.heading),
          h("td", { colspan: experiments.length }));
      }
      const differs = !sameValues(row.values);
      if (onlyDifferences && !differs) return null;
      const format = row.format || formatValue;
      return h("tr", { class: differs ? "differs" : "same", dataset: { key: row.key } },
        h("th", { class: "pinned-key", scope: "row", title: row.key }, row.key),
        row.values.map((v) => h("td", { class: v === undefined ? "missing" : null },
          v === undefined ? "—" : format(v))));
    })));
}

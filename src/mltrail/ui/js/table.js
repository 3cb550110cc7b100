// The experiments table's model, independent of the DOM: columns derived from the rows read
// (the hyperparameters that vary across runs first), cell texts and the rows as CSV. The
// server filters, sorts and pages (experiment-list.js).

import { toCsv } from "./csv.js";
import { formatDuration, formatTime, formatValue } from "./format.js";
import { isSystemKey } from "./series.js";
import { runDuration } from "./status.js";

const BASE_COLUMNS = [
  { id: "id", label: "#", group: "Experiment", get: (e) => e.experiment_id, kind: "num" },
  { id: "name", label: "Name", group: "Experiment", get: (e) => e.display_name, kind: "str" },
  { id: "status", label: "Status", group: "Experiment", get: (e) => e.status, kind: "str" },
  { id: "created", label: "Created", group: "Experiment", get: (e) => e.created_at, kind: "time" },
  { id: "duration", label: "Duration", group: "Experiment", get: (e) => runDuration(e), kind: "dur" },
  { id: "tags", label: "Tags", group: "Experiment", get: (e) => (e.tags || []).join(", "), kind: "str" },
];

function unionKeys(experiments, pick) {
  const keys = new Set();
  for (const e of experiments) for (const key of Object.keys(pick(e) || {})) keys.add(key);
  return [...keys].sort();
}

/** Whether the runs hold more than one value for the key (a run without it counts as one). */
function varies(experiments, key) {
  let first;
  for (let i = 0; i < experiments.length; i++) {
    const hp = experiments[i].hyperparameters || {};
    const text = key in hp ? JSON.stringify(hp[key]) : "\u0000missing";
    if (i === 0) first = text;
    else if (text !== first) return true;
  }
  return false;
}

/**
 * Every column the experiments can fill: base columns, `hp.<name>` per hyperparameter (those
 * that vary across the runs first, `varies` set), `<phase>/<key>` per metric (last value) and
 * one per ex_ metric.
 */
export function buildColumns(experiments) {
  const hp = unionKeys(experiments, (e) => e.hyperparameters).map((key) => ({
    id: `hp.${key}`, label: key, group: "Hyperparameters", varies: varies(experiments, key),
    get: (e) => e.hyperparameters?.[key], kind: "value",
  }));
  hp.sort((a, b) => Number(b.varies) - Number(a.varies));
  const metrics = unionKeys(experiments, (e) => e.metrics).map((key) => ({
    id: key, label: key, group: isSystemKey(key.slice(key.indexOf("/") + 1)) ? "System metrics" : "Metrics",
    get: (e) => e.metrics?.[key], kind: "value",
  }));
  const ex = unionKeys(experiments, (e) => e.ex_metrics).map((key) => ({
    id: key, label: key, group: "External metrics", get: (e) => e.ex_metrics?.[key], kind: "value",
  }));
  const tagged = experiments.some((e) => e.tags?.length);
  const base = BASE_COLUMNS.map((c) => (c.id === "tags" ? { ...c, empty: !tagged } : c));
  return [...base, ...hp, ...metrics, ...ex];
}

/** Whether a column shows when the user chose nothing: all but constant hyperparameters,
 * system metrics (and tags when no run has any). */
export function shownByDefault(column) {
  if (column.empty || column.group === "System metrics") return false;
  return column.group !== "Hyperparameters" || column.varies;
}

/** The rows as CSV: exact values (not the table's rounded text), times in ISO 8601 UTC. */
export function rowsCsv(columns, rows) {
  const value = (column, e) => {
    const v = column.get(e);
    if (column.kind === "time" && typeof v === "number") return new Date(v * 1000).toISOString();
    return v;
  };
  return toCsv(columns.map((c) => c.group === "Hyperparameters" ? `hp.${c.label}` : c.label),
    rows.map((e) => columns.map((c) => value(c, e))));
}

/** A cell's text. */
export function cellText(column, experiment) {
  const value = column.get(experiment);
  if (column.kind === "time") return formatTime(value);
  if (column.kind === "dur") return formatDuration(value);
  return formatValue(value);
}

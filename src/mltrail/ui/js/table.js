// The experiments table's model, independent of the DOM: columns derived from the data (the
// hyperparameters that vary across runs first), the filter language ("train/loss < 0.5,
// lr >= 0.01, resnet"), sorting, and the rows as CSV.

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

/** Find the column a filter names: exact id, case-insensitive id, hp name, or metric key. */
export function resolveColumn(name, columns) {
  const wanted = name.trim();
  const lower = wanted.toLowerCase();
  const exact = columns.find((c) => c.id === wanted) ||
    columns.find((c) => c.id.toLowerCase() === lower) ||
    columns.find((c) => c.id === `hp.${wanted}`) ||
    columns.find((c) => c.label.toLowerCase() === lower);
  if (exact) return exact;
  const bySuffix = columns.filter((c) => c.group === "Metrics" && c.id.endsWith(`/${wanted}`));
  return bySuffix.length === 1 ? bySuffix[0] : null;
}

const COMPARISON = /^(.+?)\s*(<=|>=|!=|==|=|<|>|~)\s*(.+)$/;

function compare(op, left, right) {
  switch (op) {
    case "<": return left < right;
    case "<=": return left <= right;
    case ">": return left > right;
    case ">=": return left >= right;
    case "=": case "==": return left === right;
    case "!=": return left !== right;
    default: return false;
  }
}

function comparisonPredicate(column, op, rawValue) {
  const text = rawValue.trim().replace(/^["']|["']$/g, "");
  const number = Number(text);
  const numeric = text !== "" && !Number.isNaN(number);
  return (e) => {
    const value = column.get(e);
    if (value === null || value === undefined) return false;
    if (op === "~") return String(value).toLowerCase().includes(text.toLowerCase());
    if (numeric && typeof value === "number") return compare(op, value, number);
    if (numeric && typeof value === "boolean") return compare(op, Number(value), number);
    const left = typeof value === "object" ? JSON.stringify(value) : String(value);
    return compare(op, left.toLowerCase(), text.toLowerCase());
  };
}

function textPredicate(text) {
  const needle = text.trim().toLowerCase();
  return (e) =>
    [e.display_name, e.description, e.status, String(e.experiment_id), ...(e.tags || [])]
      .some((s) => String(s ?? "").toLowerCase().includes(needle));
}

/**
 * Parse a filter: clauses separated by "," or " and "; each either `column op value`
 * (op one of < <= > >= = != ~) or free text matched against name, description, status, tags.
 * @returns {{test: (e) => boolean, error: string|null}}
 */
export function parseFilter(text, columns) {
  const clauses = (text || "").split(/,|\s+and\s+|&&/i).map((s) => s.trim()).filter(Boolean);
  const predicates = [];
  for (const clause of clauses) {
    const match = clause.match(COMPARISON);
    if (!match) {
      predicates.push(textPredicate(clause));
      continue;
    }
    const column = resolveColumn(match[1], columns);
    if (!column) return { test: () => true, error: `Unknown column "${match[1].trim()}" in filter` };
    predicates.push(comparisonPredicate(column, match[2], match[3]));
  }
  return { test: (e) => predicates.every((p) => p(e)), error: null };
}

function sortValue(column, e) {
  const value = column.get(e);
  if (value === null || value === undefined || (typeof value === "number" && Number.isNaN(value))) {
    return null;
  }
  return typeof value === "boolean" ? Number(value) : value;
}

/** Sort a copy of the rows by a column; missing values always last. */
export function sortRows(rows, column, descending) {
  const sign = descending ? -1 : 1;
  const keyed = rows.map((e) => [sortValue(column, e), e]);
  keyed.sort(([a], [b]) => {
    if (a === null) return b === null ? 0 : 1;
    if (b === null) return -1;
    if (typeof a === "number" && typeof b === "number") return sign * (a - b);
    return sign * String(a).localeCompare(String(b), undefined, { numeric: true });
  });
  return keyed.map(([, e]) => e);
}

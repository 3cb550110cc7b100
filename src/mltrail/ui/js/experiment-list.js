// A project's experiments as the table asks the server for them: one page at a time, filtered
// and sorted by the server (the query grammar of docs/rest.md, "Searching experiments"), so
// the page costs the same in a project of 100 or 100,000 experiments. Nothing here filters or
// sorts rows itself: it turns the table's state into a query and reads pages.

import { api, query } from "./api.js";

const MAX_LIMIT = 1000; // the server's largest page
const OPERATORS = /[=<>!()`]|\s(?:not\s+)?(?:like|ilike|in)[\s(]/i;

/** A name segment of the grammar, backquoted (a backquote inside is doubled). */
function segment(name) {
  return "`" + String(name).replaceAll("`", "``") + "`";
}

/** A string literal of the grammar (a backslash escapes a quote or a backslash). */
export function quoted(text) {
  return "'" + String(text).replace(/[\\']/g, (c) => "\\" + c) + "'";
}

/**
 * The server's filter for what the reader typed: an expression of the grammar as it is, or,
 * for plain words (no operator in them), the runs whose name or a tag contains them.
 */
export function serverFilter(text) {
  const typed = (text || "").trim();
  if (!typed) return null;
  if (OPERATORS.test(typed)) return typed;
  const pattern = quoted(`%${typed.replace(/[\\%_]/g, (c) => "\\" + c)}%`);
  return `name ilike ${pattern} or tags ilike ${pattern}`;
}

/** The grammar's field for a table column (by its id), or null when the server cannot sort on it. */
export function orderField(column) {
  const base = { id: "id", name: "name", status: "status", created: "created", duration: "duration", tags: null };
  if (column.id in base) return base[column.id];
  if (column.id.startsWith("hp.")) return `params.${segment(column.id.slice(3))}`;
  return `metrics.${segment(column.id)}`; // phase/key, or an ex_ metric
}

/** The pages of one project's experiments for one filter, order and lifecycle state. */
export class ExperimentPages {
  constructor(projectId, signal) {
    this.path = `/projects/${projectId}/experiments`;
    this.signal = signal;
    this.filter = null;
    this.orderBy = null;
    this.include = "active";
  }

  params(offset, limit) {
    return { filter: this.filter, order_by: this.orderBy, include: this.include === "active" ? null : this.include, offset, limit };
  }

  /** One page: `{items, total, offset}`. A bad filter rejects with the server's ApiError. */
  async read(offset, limit, signal = this.signal) {
    return api(this.path + query(this.params(offset, limit)), { signal });
  }

  /** Every match, page by page (CSV downloads, select-all, plots), at most `cap` of them. */
  async all(cap = 100_000, onPage = () => {}) {
    const items = [];
    for (;;) {
      const page = await this.read(items.length, Math.min(MAX_LIMIT, cap - items.length));
      items.push(...page.items);
      onPage(items.length, page.total);
      if (!page.items.length || items.length >= page.total || items.length >= cap) return { items, total: page.total };
    }
  }
}

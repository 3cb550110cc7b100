// A project's experiments table: every experiment loads page by page in the background, and
// sort, filter, column choice and selection work on all of them while only one page of rows
// is in the DOM, so 10,000 experiments stay quick. State lives in the URL.

import { api, query } from "../api.js";
import { replaceQuery } from "../app.js";
import { h, link, setChildren } from "../dom.js";
import { formatCount } from "../format.js";
import { buildColumns, cellText, parseFilter, sortRows } from "../table.js";

const FIRST_FETCH = 200;
const FETCH_SIZE = 1000;
const PAGE_SIZE = 50;
const DEFAULT_VISIBLE_HP = 6;

function hiddenColumnsKey(project) {
  return `mltrail.columns.${project}`;
}

function loadHidden(project) {
  try {
    return JSON.parse(localStorage.getItem(hiddenColumnsKey(project)) || "null");
  } catch {
    return null;
  }
}

/** Render the experiments page of a project. */
export async function renderExperiments(ctx, projectId) {
  const project = await api(`/projects/${projectId}`, { signal: ctx.signal });
  // A small first page shows rows at once; the rest follows in larger pages.
  const first = await api(`/projects/${projectId}/experiments${query({ offset: 0, limit: FIRST_FETCH })}`,
    { signal: ctx.signal });
  ctx.setTitle(project.display_name);
  const view = new ExperimentsView(ctx, project, first);
  view.mount();
  view.loadRest().catch((error) => ctx.fail(error));
}

class ExperimentsView {
  constructor(ctx, project, first) {
    this.ctx = ctx;
    this.project = project;
    this.experiments = [...first.items];
    this.total = first.total;
    this.filterText = ctx.params.get("q") || "";
    this.sortId = ctx.params.get("sort") || "id";
    this.descending = ctx.params.get("desc") === "1";
    this.page = Math.max(0, Number(ctx.params.get("page") || 1) - 1);
    this.selected = new Set((ctx.params.get("sel") || "").split(",").filter(Boolean).map(Number));
    this.hidden = loadHidden(project.id);
    this.columns = [];
  }

  mount() {
    const p = this.project;
    this.filterInput = h("input", {
      type: "search", class: "filter", name: "filter", value: this.filterText,
      placeholder: "Filter: text, or train/loss < 0.5, lr >= 0.01, status = done",
      oninput: () => { this.filterText = this.filterInput.value; this.page = 0; this.update(); },
    });
    this.filterError = h("span", { class: "form-error filter-error", role: "alert" });
    this.columnsMenu = h("details", { class: "columns-menu" }, h("summary", {}, "Columns"));
    this.compareButton = h("button", { type: "button", class: "compare", onclick: () => this.compare() });
    this.progress = h("span", { class: "muted progress" });
    this.table = h("table", { class: "data experiments" });
    this.pager = h("div", { class: "pager" });
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs" }, h("a", { href: "#/" }, "Projects"), " / ", p.display_name),
      h("div", { class: "page-head" },
        h("h1", {}, p.display_name),
        p.description ? h("p", { class: "description" }, p.description) : null),
      h("div", { class: "toolbar" }, this.filterInput, this.columnsMenu, this.compareButton, this.progress),
      this.filterError,
      h("div", { class: "table-scroll" }, this.table),
      this.pager,
    );
    this.update();
  }

  async loadRest() {
    while (this.experiments.length < this.total && !this.ctx.signal.aborted) {
      const page = await api(`/projects/${this.project.id}/experiments${query({
        offset: this.experiments.length, limit: FETCH_SIZE })}`, { signal: this.ctx.signal });
      if (!page.items.length) break;
      this.experiments.push(...page.items);
      this.total = page.total;
      this.update();
    }
  }

  visibleColumns() {
    if (this.hidden) return this.columns.filter((c) => c.id === "id" || !this.hidden.includes(c.id));
    // Default: basics, the first few hyperparameters, every metric and ex_ metric.
    let hp = 0;
    return this.columns.filter((c) => c.group !== "Hyperparameters" || hp++ < DEFAULT_VISIBLE_HP);
  }

  update() {
    if (this.ctx.signal.aborted) return; // a late page must not touch the next view's URL
    const columnIds = this.columns.map((c) => c.id).join("\n");
    this.columns = buildColumns(this.experiments);
    if (columnIds !== this.columns.map((c) => c.id).join("\n")) this.renderColumnsMenu();
    const filter = parseFilter(this.filterText, this.columns);
    this.filterError.textContent = filter.error || "";
    const sortColumn = this.columns.find((c) => c.id === this.sortId) || this.columns[0];
    const rows = sortRows(this.experiments.filter(filter.test), sortColumn, this.descending);
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    this.page = Math.min(this.page, pages - 1);
    this.renderTable(rows.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE));
    this.renderPager(rows.length, pages);
    this.renderStatus();
    this.saveState();
  }

  renderStatus() {
    const loaded = this.experiments.length;
    this.progress.textContent = loaded < this.total
      ? `Loading ${formatCount(loaded)} of ${formatCount(this.total)}…` : "";
    this.compareButton.textContent = `Compare (${this.selected.size})`;
    this.compareButton.disabled = this.selected.size < 2;
  }

  renderTable(rows) {
    const columns = this.visibleColumns();
    const header = h("tr", {}, h("th", { class: "select" }, ""), columns.map((c) => {
      const arrow = c.id === this.sortId ? (this.descending ? " ▼" : " ▲") : "";
      return h("th", {
        class: "sortable", title: `${c.group}: ${c.id}`, dataset: { column: c.id }, tabindex: 0,
        "aria-sort": c.id === this.sortId ? (this.descending ? "descending" : "ascending") : null,
        onclick: () => this.sortBy(c.id),
        onkeydown: (event) => {
          if (event.key !== "Enter" && event.key !== " ") return;
          event.preventDefault();
          this.sortBy(c.id);
        },
      }, c.label, arrow);
    }));
    const body = rows.map((e) => h("tr", { dataset: { experimentId: e.experiment_id } },
      h("td", { class: "select" }, h("input", {
        type: "checkbox", checked: this.selected.has(e.experiment_id),
        "aria-label": `Select experiment ${e.experiment_id}`,
        onchange: (event) => this.toggle(e.experiment_id, event.target.checked),
      })),
      columns.map((c) => this.cell(c, e))));
    const empty = rows.length ? null : h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted" },
      this.experiments.length ? "No experiment matches the filter." : "No experiments yet."));
    this.table.replaceChildren(h("thead", {}, header), h("tbody", {}, body, empty));
  }

  cell(column, experiment) {
    const text = cellText(column, experiment);
    const route = `/projects/${this.project.id}/experiments/${experiment.experiment_id}`;
    if (column.id === "name" || column.id === "id") {
      return h("td", { class: column.id }, link(route, text));
    }
    if (column.id === "status") {
      return h("td", {}, h("span", { class: `status status-${experiment.status}` }, text));
    }
    const numeric = typeof column.get(experiment) === "number";
    return h("td", { class: numeric ? "num" : null, dataset: { column: column.id } }, text);
  }

  renderPager(count, pages) {
    const from = count ? this.page * PAGE_SIZE + 1 : 0;
    const to = Math.min(count, (this.page + 1) * PAGE_SIZE);
    const go = (page) => () => { this.page = page; this.update(); };
    this.pager.replaceChildren(
      h("button", { type: "button", class: "prev", disabled: this.page === 0, onclick: go(this.page - 1) }, "‹ Prev"),
      h("span", { class: "page-info" }, `Page ${this.page + 1} of ${pages}`),
      h("button", { type: "button", class: "next", disabled: this.page >= pages - 1, onclick: go(this.page + 1) }, "Next ›"),
      h("span", { class: "muted row-count" },
        `Rows ${formatCount(from)}–${formatCount(to)} of ${formatCount(count)}` +
        (count !== this.experiments.length ? ` (filtered from ${formatCount(this.experiments.length)})` : "")),
    );
  }

  renderColumnsMenu() {
    const visible = new Set(this.visibleColumns().map((c) => c.id));
    const groups = new Map();
    for (const c of this.columns) {
      if (c.id === "id") continue;
      if (!groups.has(c.group)) groups.set(c.group, []);
      groups.get(c.group).push(c);
    }
    const summary = this.columnsMenu.querySelector("summary");
    this.columnsMenu.replaceChildren(summary, h("div", { class: "columns-list" },
      [...groups].map(([group, cols]) => h("fieldset", {}, h("legend", {}, group),
        cols.map((c) => h("label", {}, h("input", {
          type: "checkbox", name: "column", value: c.id, checked: visible.has(c.id),
          onchange: (event) => this.showColumn(c.id, event.target.checked),
        }), " ", c.label))))));
  }

  showColumn(id, shown) {
    const visible = new Set(this.visibleColumns().map((c) => c.id));
    if (shown) visible.add(id);
    else visible.delete(id);
    this.hidden = this.columns.map((c) => c.id).filter((c) => !visible.has(c));
    localStorage.setItem(hiddenColumnsKey(this.project.id), JSON.stringify(this.hidden));
    this.update();
  }

  sortBy(id) {
    this.descending = this.sortId === id ? !this.descending : false;
    this.sortId = id;
    this.update();
  }

  toggle(id, checked) {
    if (checked) this.selected.add(id);
    else this.selected.delete(id);
    this.renderStatus();
    this.saveState();
  }

  /** Mirror filter, sort, page and selection into the URL so the view can be bookmarked. */
  saveState() {
    replaceQuery({
      q: this.filterText, sort: this.sortId === "id" ? null : this.sortId,
      desc: this.descending ? 1 : null, page: this.page ? this.page + 1 : null,
      sel: [...this.selected].join(","),
    });
  }

  compare() {
    const ids = [...this.selected].sort((a, b) => a - b).join(",");
    location.hash = `#/projects/${this.project.id}/compare?ids=${ids}`;
  }
}

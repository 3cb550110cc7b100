// A project's experiments table. The server filters (the query grammar, or plain words for a
// name or tag), sorts and pages; the page holds one page of rows and re-reads only that page
// every few seconds (new runs, live status, metrics, duration), so it opens and stays as quick
// in a project of 100,000 experiments as in one of 10. Runs can be archived, moved to the
// trash and restored from here; the lifecycle state shown is chosen like a filter. State lives
// in the URL.

import { api } from "../api.js";
import { replaceQuery } from "../app.js";
import { downloadText, safeFilename } from "../csv.js";
import { h, link, setChildren, sleep } from "../dom.js";
import { savedViewsMenu } from "../saved-views.js";
import { ExperimentPages, orderField, serverFilter } from "../experiment-list.js";
import { formatCount } from "../format.js";
import { HparamPlots } from "../hpplots.js";
import { LIFECYCLE, runLifecycle, stateOf } from "../lifecycle.js";
import { popover } from "../menu.js";
import { limiter } from "../series.js";
import { durationText, isFailure, statusPill, tickDurations } from "../status.js";
import { buildColumns, cellText, rowsCsv, shownByDefault } from "../table.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 4000;
const TYPING_MS = 300;
const KEEP_ROWS = 2000; // rows remembered to name the columns (hyperparameters, metrics seen)
const PLOT_ROWS = 1000;
const SELECT_ALL_MAX = 10_000;
const PINNED = new Set(["id", "name"]);
const INCLUDES = [["active", "Active"], ["archived", "Archived"], ["deleted", "Trash"], ["all", "All"]];
const writes = limiter(4);

function columnsKey(project) {
  return `mltrail.columns.v2.${project}`;
}

/** The user's explicit column choices: {shown: [...ids], hidden: [...ids]}. */
function loadChoices(project) {
  try {
    const saved = JSON.parse(localStorage.getItem(columnsKey(project)) || "null");
    if (saved && Array.isArray(saved.shown) && Array.isArray(saved.hidden)) return saved;
  } catch {
    // a damaged entry is ignored: defaults apply
  }
  return { shown: [], hidden: [] };
}

/** Render the experiments page of a project. */
export async function renderExperiments(ctx, projectId) {
  const view = new ExperimentsView(ctx, { id: projectId });
  const [project] = await Promise.all([api(`/projects/${projectId}`, { signal: ctx.signal }), view.reload({ initial: true })]);
  view.project = project; // the page read does not wait for the project's name
  ctx.setTitle(project.display_name);
  view.mount();
  view.followLive().catch((error) => ctx.fail(error));
}

class ExperimentsView {
  constructor(ctx, project) {
    this.ctx = ctx;
    this.project = project;
    const params = ctx.params;
    this.filterText = params.get("q") || "";
    this.sortId = params.get("sort") || "id";
    this.descending = params.get("desc") === "1";
    this.page = Math.max(0, Number(params.get("page") || 1) - 1);
    this.include = INCLUDES.some(([id]) => id === params.get("show")) ? params.get("show") : "active";
    this.selected = new Set((params.get("sel") || "").split(",").filter(Boolean).map(Number));
    this.choices = loadChoices(project.id);
    this.pages = new ExperimentPages(project.id, ctx.signal);
    this.items = [];
    this.total = 0;
    this.seen = new Map();
    this.columns = [];
    this.readCount = 0;
    this.filterError = h("span", { class: "form-error filter-error", role: "alert" });
    this.plots = new HparamPlots({ labelOf: (e) => `#${e.experiment_id} ${e.display_name}` });
  }

  /** Read the current page for the current query; a stale answer (typing moved on) is dropped. */
  async reload({ initial = false } = {}) {
    const pages = this.pages;
    pages.filter = serverFilter(this.filterText);
    pages.orderBy = this.sortId === "id" && !this.descending ? null
      : `${orderField({ id: this.sortId }) ?? "id"} ${this.descending ? "desc" : "asc"}`;
    pages.include = this.include;
    const read = ++this.readCount;
    let page;
    try {
      page = await pages.read(this.page * PAGE_SIZE, PAGE_SIZE);
    } catch (error) {
      if (read !== this.readCount || this.ctx.signal.aborted) return; // stale: a newer read answers
      if (error?.status !== 422) throw error;
      this.showFilterError(error);
      if (initial) [this.items, this.total] = [[], 0];
      return;
    }
    if (read !== this.readCount || this.ctx.signal.aborted) return;
    if (!page.items.length && page.total && this.page > 0) {
      this.page = Math.floor((page.total - 1) / PAGE_SIZE); // past the end (rows went away)
      return this.reload({ initial });
    }
    this.take(page);
    this.filterError.textContent = "";
    if (!initial) this.update();
  }

  showFilterError(error) {
    this.filterError.textContent = `${error.field ? `${error.field}: ` : ""}${error.message}`;
  }

  take(page) {
    this.items = page.items;
    this.total = page.total;
    for (const e of page.items) {
      this.seen.delete(e.experiment_id);
      this.seen.set(e.experiment_id, e);
    }
    while (this.seen.size > KEEP_ROWS) this.seen.delete(this.seen.keys().next().value);
  }

  mount() {
    const p = this.project;
    this.filterInput = h("input", {
      type: "search", class: "filter", name: "filter", value: this.filterText,
      "aria-label": "Filter experiments",
      placeholder: "Filter: metrics.validation/loss < 0.5 and params.lr >= 0.01, status = 'done', or a name",
      oninput: () => this.typed(),
    });
    this.includeSelect = h("select", { name: "include", "aria-label": "Which experiments", onchange: () => {
      this.include = this.includeSelect.value;
      this.page = 0;
      this.refreshNow();
    } }, INCLUDES.map(([id, label]) => h("option", { value: id, selected: id === this.include }, label)));
    this.columnsMenu = popover("Columns", (panel) => this.fillColumnsMenu(panel),
      { className: "columns-menu", title: "Choose columns", signal: this.ctx.signal });
    this.compareButton = h("button", { type: "button", class: "compare", onclick: () => this.compare() });
    this.actions = h("span", { class: "bulk-actions" });
    this.progress = h("span", { class: "muted progress", role: "status" });
    this.table = h("table", { class: "data experiments" });
    this.pager = h("div", { class: "pager" });
    this.plotNote = h("p", { class: "muted plot-note" });
    this.plotsPanel = h("details", { class: "plots-panel", ontoggle: () => this.updatePlots() },
      h("summary", {}, "Hyperparameters vs metrics: parallel coordinates and scatter"), this.plotNote, this.plots.element);
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumbs" }, h("a", { href: "#/" }, "Projects"), " / ", p.display_name),
      h("div", { class: "page-head" },
        h("h1", {}, p.display_name),
        p.description ? h("p", { class: "description" }, p.description) : null,
        link(`/jobs?project=${p.id}`, "Jobs")),
      h("div", { class: "toolbar" }, this.filterInput, this.includeSelect, this.columnsMenu.element,
        h("button", { type: "button", class: "download-csv", onclick: () => this.downloadCsv() }, "CSV"),
        savedViewsMenu(p.id, { signal: this.ctx.signal }).element,
        this.compareButton, this.actions, this.progress),
      this.filterError,
      h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Experiments" }, this.table),
      this.pager,
      this.plotsPanel,
    );
    tickDurations(this.table, this.ctx.signal);
    this.update();
  }

  typed() {
    this.filterText = this.filterInput.value;
    this.page = 0;
    clearTimeout(this.typing);
    this.typing = setTimeout(() => this.refreshNow(), TYPING_MS);
  }

  refreshNow() {
    this.saveState();
    this.reload().then(() => this.updatePlots(true)).catch((error) => this.ctx.fail(error));
  }

  /** Re-read the page shown until the view closes (one page, whatever the project's size). */
  async followLive() {
    while (!this.ctx.signal.aborted) {
      await sleep(REFRESH_MS, this.ctx.signal);
      if (this.ctx.signal.aborted) return;
      // this read makes a reload in flight stale, so it answers for the filter as reload would:
      // a 422 shows the filter's error, an answer clears it
      const read = ++this.readCount;
      try {
        const before = JSON.stringify([this.items, this.total]);
        const page = await this.pages.read(this.page * PAGE_SIZE, PAGE_SIZE);
        if (read !== this.readCount) continue;
        this.filterError.textContent = "";
        if (JSON.stringify([page.items, page.total]) !== before) {
          this.take(page);
          this.update();
        }
        this.progress.textContent = "";
      } catch (error) {
        if (error?.name === "AbortError") return;
        if (error?.status === 422) {
          if (read === this.readCount) this.showFilterError(error);
          continue;
        }
        this.progress.textContent = `Connection problem (${error.message}); retrying…`;
      }
    }
  }

  isShown(column) {
    if (PINNED.has(column.id)) return true;
    if (this.choices.shown.includes(column.id)) return true;
    if (this.choices.hidden.includes(column.id)) return false;
    return shownByDefault(column);
  }

  visibleColumns() {
    return this.columns.filter((c) => this.isShown(c));
  }

  update() {
    if (this.ctx.signal.aborted) return; // a late page must not touch the next view's URL
    this.columns = buildColumns([...this.seen.values()]);
    this.renderTable(this.items);
    this.renderPager();
    this.renderStatus();
    this.saveState();
  }

  /** The plots read up to PLOT_ROWS matching runs when opened (or the query changed). */
  async updatePlots(queryChanged = false) {
    if (!this.plotsPanel.open || (this.plotted && !queryChanged)) return;
    this.plotted = true;
    const { items, total } = await this.pages.all(PLOT_ROWS);
    this.plotNote.textContent = total > items.length
      ? `The first ${formatCount(items.length)} of ${formatCount(total)} matching runs, in the table's order.` : "";
    this.plots.update(items, buildColumns(items));
  }

  renderStatus() {
    this.compareButton.textContent = `Compare (${this.selected.size})`;
    this.compareButton.disabled = this.selected.size < 2;
    const actions = Object.entries(LIFECYCLE).filter(([, a]) => this.include === "all" || a.from.includes(this.include));
    this.actions.replaceChildren(...actions.map(([id, action]) => h("button", {
      type: "button", class: `bulk-${id}`, disabled: !this.selected.size,
      title: `${action.label}: the ${this.selected.size} selected experiments`,
      onclick: () => this.applyToSelected(id).catch((error) => this.ctx.fail(error)),
    }, action.label)));
  }

  async applyToSelected(action) {
    const ids = [...this.selected];
    this.progress.textContent = `${LIFECYCLE[action].label}: ${ids.length} experiments…`;
    const results = await Promise.allSettled(ids.map((id) =>
      writes(() => runLifecycle(action, this.project.id, id, this.ctx.signal))));
    const refused = results.map((r, i) => [r, ids[i]]).filter(([r]) => r.status === "rejected");
    for (const [r, id] of results.map((r, i) => [r, ids[i]])) if (r.status === "fulfilled") this.selected.delete(id);
    this.progress.textContent = refused.length
      ? `${refused.length} refused: ${refused.slice(0, 3).map(([r, id]) => `#${id} ${r.reason.message}`).join("; ")}` : "";
    await this.reload();
  }

  selectAllBox() {
    const ids = this.items.map((e) => e.experiment_id);
    const chosen = ids.filter((id) => this.selected.has(id)).length;
    const box = h("input", {
      type: "checkbox", class: "select-all", checked: ids.length > 0 && chosen === ids.length,
      "aria-label": `Select the ${ids.length} experiments of this page`,
      onchange: (event) => {
        for (const id of ids) {
          if (event.target.checked) this.selected.add(id);
          else this.selected.delete(id);
        }
        this.update();
      },
    });
    box.indeterminate = chosen > 0 && chosen < ids.length;
    return box;
  }

  headerCell(c) {
    const sortable = orderField(c) !== null;
    const arrow = c.id === this.sortId ? (this.descending ? " ▼" : " ▲") : "";
    return h("th", {
      class: `${sortable ? "sortable" : ""}${PINNED.has(c.id) ? ` pinned pinned-${c.id}` : ""}`, scope: "col",
      title: `${c.group}: ${c.id}`, dataset: { column: c.id }, tabindex: sortable ? 0 : null,
      "aria-sort": c.id === this.sortId ? (this.descending ? "descending" : "ascending") : null,
      onclick: sortable ? () => this.sortBy(c.id) : null,
      onkeydown: (event) => {
        if (!sortable || (event.key !== "Enter" && event.key !== " ")) return;
        event.preventDefault();
        this.sortBy(c.id);
      },
    }, c.label, arrow);
  }

  renderTable(rows) {
    const columns = this.visibleColumns();
    const header = h("tr", {}, h("th", { class: "select pinned pinned-select", scope: "col" }, this.selectAllBox()),
      columns.map((c) => this.headerCell(c)));
    const body = rows.map((e) => h("tr", {
      dataset: { experimentId: e.experiment_id, state: stateOf(e) },
      class: isFailure(e.status) ? "run-failure" : null,
    },
    h("td", { class: "select pinned pinned-select" }, h("input", {
      type: "checkbox", checked: this.selected.has(e.experiment_id),
      "aria-label": `Select experiment ${e.experiment_id}`,
      onchange: (event) => this.toggle(e.experiment_id, event.target.checked),
    })),
    columns.map((c) => this.cell(c, e))));
    const filtered = this.filterText.trim() || this.include !== "active";
    const empty = rows.length ? null : h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted" },
      filtered ? "No experiment matches the filter." : "No experiments yet."));
    this.table.replaceChildren(h("thead", {}, header), h("tbody", {}, body, empty));
  }

  cell(column, experiment) {
    const text = cellText(column, experiment);
    const route = `/projects/${this.project.id}/experiments/${experiment.experiment_id}`;
    if (column.id === "name") {
      return h("td", { class: "name pinned pinned-name", title: text, dataset: { column: "name" } }, link(route, text));
    }
    if (column.id === "id") return h("td", { class: "id pinned pinned-id", dataset: { column: "id" } }, link(route, text));
    if (column.id === "status") {
      const state = stateOf(experiment);
      return h("td", { class: "status-cell", dataset: { column: "status" } }, statusPill(experiment.status),
        state === "active" ? null : h("span", { class: `badge state-badge state-${state}` }, state === "deleted" ? "in trash" : state));
    }
    if (column.id === "duration") return h("td", { class: "num", dataset: { column: "duration" } }, durationText(experiment));
    const numeric = typeof column.get(experiment) === "number";
    return h("td", { class: numeric ? "num" : "text", dataset: { column: column.id }, title: text.length > 24 ? text : null }, text);
  }

  renderPager() {
    const pages = Math.max(1, Math.ceil(this.total / PAGE_SIZE));
    const from = this.items.length ? this.page * PAGE_SIZE + 1 : 0;
    const to = this.page * PAGE_SIZE + this.items.length;
    const go = (page) => () => { this.page = page; this.refreshNow(); };
    const allOnPage = this.items.length && this.items.every((e) => this.selected.has(e.experiment_id));
    const selectAll = allOnPage && this.total > this.items.length && this.total <= SELECT_ALL_MAX
      ? h("button", { type: "button", class: "link select-matching", onclick: () => this.selectMatching() },
        `Select all ${formatCount(this.total)} matching`) : null;
    this.pager.replaceChildren(
      h("button", { type: "button", class: "prev", disabled: this.page === 0, onclick: go(this.page - 1) }, "‹ Prev"),
      h("span", { class: "page-info" }, `Page ${this.page + 1} of ${formatCount(pages)}`),
      h("button", { type: "button", class: "next", disabled: this.page >= pages - 1, onclick: go(this.page + 1) }, "Next ›"),
      h("span", { class: "muted row-count" }, `Rows ${formatCount(from)}–${formatCount(to)} of ${formatCount(this.total)}` +
        (this.filterText.trim() ? " matching the filter" : "")),
      selectAll,
    );
  }

  async selectMatching() {
    const { items } = await this.pages.all(SELECT_ALL_MAX, (n, total) => {
      this.progress.textContent = `Selecting ${formatCount(n)} of ${formatCount(total)}…`;
    });
    for (const e of items) this.selected.add(e.experiment_id);
    this.progress.textContent = "";
    this.update();
  }

  fillColumnsMenu(panel) {
    const search = h("input", {
      type: "search", name: "column-search", placeholder: "Find a column", "aria-label": "Find a column",
      oninput: () => {
        const needle = search.value.trim().toLowerCase();
        for (const label of panel.querySelectorAll("label.column-choice")) {
          label.hidden = Boolean(needle) && !label.dataset.column.toLowerCase().includes(needle);
        }
      },
    });
    const groups = new Map();
    for (const c of this.columns) {
      if (PINNED.has(c.id)) continue;
      if (!groups.has(c.group)) groups.set(c.group, []);
      groups.get(c.group).push(c);
    }
    panel.append(search, h("div", { class: "columns-list" },
      [...groups].map(([group, cols]) => h("fieldset", {}, h("legend", {}, group),
        cols.map((c) => h("label", { class: "column-choice", dataset: { column: c.id } }, h("input", {
          type: "checkbox", name: "column", value: c.id, checked: this.isShown(c),
          onchange: (event) => this.showColumn(c.id, event.target.checked),
        }), " ", c.label, c.group === "Hyperparameters" && !c.varies ? h("span", { class: "muted" }, " (same in every run)") : null))))));
  }

  showColumn(id, shown) {
    const { choices } = this;
    choices.shown = choices.shown.filter((c) => c !== id);
    choices.hidden = choices.hidden.filter((c) => c !== id);
    (shown ? choices.shown : choices.hidden).push(id);
    localStorage.setItem(columnsKey(this.project.id), JSON.stringify(choices));
    this.update();
  }

  /** Every matching row (read page by page from the server), with the columns shown. */
  async downloadCsv() {
    const { items } = await this.pages.all(undefined, (n, total) => {
      this.progress.textContent = `Preparing CSV: ${formatCount(n)} of ${formatCount(total)} rows…`;
    });
    this.progress.textContent = "";
    const name = `${safeFilename(this.project.display_name)}-experiments.csv`;
    downloadText(name, rowsCsv(this.visibleColumns(), items));
  }

  sortBy(id) {
    this.descending = this.sortId === id ? !this.descending : false;
    this.sortId = id;
    this.page = 0;
    this.refreshNow();
  }

  toggle(id, checked) {
    if (checked) this.selected.add(id);
    else this.selected.delete(id);
    const all = this.table.querySelector("input.select-all");
    all?.replaceWith(this.selectAllBox());
    this.renderStatus();
    this.renderPager();
    this.saveState();
  }

  /** Mirror filter, sort, page, shown state and selection into the URL (bookmarkable). */
  saveState() {
    replaceQuery({
      q: this.filterText, sort: this.sortId === "id" ? null : this.sortId,
      desc: this.descending ? 1 : null, page: this.page ? this.page + 1 : null,
      show: this.include === "active" ? null : this.include, sel: [...this.selected].join(","),
    });
  }

  compare() {
    const ids = [...this.selected].sort((a, b) => a - b).join(",");
    location.hash = `#/projects/${this.project.id}/compare?ids=${ids}`;
  }
}

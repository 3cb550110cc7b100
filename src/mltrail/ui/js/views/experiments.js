// A project's experiments table: every experiment loads page by page in the background, and
// sort, filter, column choice and selection work on all of them while only one page of rows
// is in the DOM, so 10,000 experiments stay quick. The table refreshes itself every few
// seconds (new runs, live runs' status, metrics and duration). State lives in the URL.

import { api } from "../api.js";
import { replaceQuery } from "../app.js";
import { downloadText, safeFilename } from "../csv.js";
import { h, link, setChildren, sleep } from "../dom.js";
import { formatCount } from "../format.js";
import { ExperimentList } from "../experiment-list.js";
import { HparamPlots } from "../hpplots.js";
import { popover } from "../menu.js";
import { durationText, isFailure, statusPill, tickDurations } from "../status.js";
import { buildColumns, cellText, parseFilter, rowsCsv, shownByDefault, sortRows } from "../table.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 4000;
const PINNED = new Set(["id", "name"]);

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
  const project = await api(`/projects/${projectId}`, { signal: ctx.signal });
  const list = new ExperimentList(projectId, ctx.signal);
  await list.loadFirst();
  ctx.setTitle(project.display_name);
  const view = new ExperimentsView(ctx, project, list);
  view.mount();
  view.loadRest().then(() => view.followLive()).catch((error) => ctx.fail(error));
}

class ExperimentsView {
  constructor(ctx, project, list) {
    this.ctx = ctx;
    this.project = project;
    this.list = list;
    this.filterText = ctx.params.get("q") || "";
    this.sortId = ctx.params.get("sort") || "id";
    this.descending = ctx.params.get("desc") === "1";
    this.page = Math.max(0, Number(ctx.params.get("page") || 1) - 1);
    this.selected = new Set((ctx.params.get("sel") || "").split(",").filter(Boolean).map(Number));
    this.choices = loadChoices(project.id);
    this.columns = [];
    this.rows = [];
    this.plots = new HparamPlots({ labelOf: (e) => `#${e.experiment_id} ${e.display_name}` });
  }

  get experiments() {
    return this.list.items;
  }

  mount() {
    const p = this.project;
    this.filterInput = h("input", {
      type: "search", class: "filter", name: "filter", value: this.filterText,
      "aria-label": "Filter experiments",
      placeholder: "Filter: text, or train/loss < 0.5, lr >= 0.01, status = done",
      oninput: () => { this.filterText = this.filterInput.value; this.page = 0; this.update(); },
    });
    this.filterError = h("span", { class: "form-error filter-error", role: "alert" });
    this.columnsMenu = popover("Columns", (panel) => this.fillColumnsMenu(panel),
      { className: "columns-menu", title: "Choose columns", signal: this.ctx.signal });
    this.compareButton = h("button", { type: "button", class: "compare", onclick: () => this.compare() });
    this.progress = h("span", { class: "muted progress", role: "status" });
    this.table = h("table", { class: "data experiments" });
    this.pager = h("div", { class: "pager" });
    this.plotsPanel = h("details", { class: "plots-panel", ontoggle: () => this.updatePlots() },
      h("summary", {}, "Hyperparameters vs metrics: parallel coordinates and scatter"), this.plots.element);
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumbs" }, h("a", { href: "#/" }, "Projects"), " / ", p.display_name),
      h("div", { class: "page-head" },
        h("h1", {}, p.display_name),
        p.description ? h("p", { class: "description" }, p.description) : null,
        link(`/jobs?project=${p.id}`, "Jobs")),
      h("div", { class: "toolbar" }, this.filterInput, this.columnsMenu.element,
        h("button", { type: "button", class: "download-csv", onclick: () => this.downloadCsv() }, "CSV"),
        this.compareButton, this.progress),
      this.filterError,
      h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Experiments" }, this.table),
      this.pager,
      this.plotsPanel,
    );
    tickDurations(this.table, this.ctx.signal);
    this.update();
  }

  async loadRest() {
    await this.list.loadRest(() => this.update());
  }

  /** Poll for new and changed experiments until the view closes. */
  async followLive() {
    while (!this.ctx.signal.aborted) {
      await sleep(REFRESH_MS, this.ctx.signal);
      if (this.ctx.signal.aborted) return;
      try {
        if (await this.list.refresh()) this.update();
        this.progress.textContent = "";
      } catch (error) {
        if (error?.name === "AbortError") return;
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
    this.columns = buildColumns(this.experiments);
    const filter = parseFilter(this.filterText, this.columns);
    this.filterError.textContent = filter.error || "";
    const sortColumn = this.columns.find((c) => c.id === this.sortId) || this.columns[0];
    this.rows = sortRows(this.experiments.filter(filter.test), sortColumn, this.descending);
    const pages = Math.max(1, Math.ceil(this.rows.length / PAGE_SIZE));
    this.page = Math.min(this.page, pages - 1);
    this.renderTable(this.rows.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE));
    this.renderPager(this.rows.length, pages);
    this.renderStatus();
    this.saveState();
    if (this.plotsPanel.open) this.updatePlots();
  }

  updatePlots() {
    if (this.plotsPanel.open) this.plots.update(this.rows, this.columns);
  }

  renderStatus() {
    const loaded = this.experiments.length;
    this.progress.textContent = loaded < this.list.total
      ? `Loading ${formatCount(loaded)} of ${formatCount(this.list.total)}…` : "";
    this.compareButton.textContent = `Compare (${this.selected.size})`;
    this.compareButton.disabled = this.selected.size < 2;
  }

  selectAllBox() {
    const ids = this.rows.map((e) => e.experiment_id);
    const chosen = ids.filter((id) => this.selected.has(id)).length;
    const box = h("input", {
      type: "checkbox", class: "select-all", checked: ids.length > 0 && chosen === ids.length,
      "aria-label": `Select all ${ids.length} experiments that match the filter`,
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
    const arrow = c.id === this.sortId ? (this.descending ? " ▼" : " ▲") : "";
    return h("th", {
      class: `sortable${PINNED.has(c.id) ? ` pinned pinned-${c.id}` : ""}`, scope: "col",
      title: `${c.group}: ${c.id}`, dataset: { column: c.id }, tabindex: 0,
      "aria-sort": c.id === this.sortId ? (this.descending ? "descending" : "ascending") : null,
      onclick: () => this.sortBy(c.id),
      onkeydown: (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
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
      dataset: { experimentId: e.experiment_id }, class: isFailure(e.status) ? "run-failure" : null,
    },
      h("td", { class: "select pinned pinned-select" }, h("input", {
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
    if (column.id === "name") {
      return h("td", { class: "name pinned pinned-name", title: text }, link(route, text));
    }
    if (column.id === "id") return h("td", { class: "id pinned pinned-id" }, link(route, text));
    if (column.id === "status") return h("td", { class: "status-cell" }, statusPill(experiment.status));
    if (column.id === "duration") return h("td", { class: "num", dataset: { column: "duration" } }, durationText(experiment));
    const numeric = typeof column.get(experiment) === "number";
    return h("td", { class: numeric ? "num" : "text", dataset: { column: column.id }, title: text.length > 24 ? text : null }, text);
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

  downloadCsv() {
    const name = `${safeFilename(this.project.display_name)}-experiments.csv`;
    downloadText(name, rowsCsv(this.visibleColumns(), this.rows));
  }

  sortBy(id) {
    this.descending = this.sortId === id ? !this.descending : false;
    this.sortId = id;
    this.update();
  }

  toggle(id, checked) {
    if (checked) this.selected.add(id);
    else this.selected.delete(id);
    const all = this.table.querySelector("input.select-all");
    all?.replaceWith(this.selectAllBox());
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

// Saved views: a name for the current URL of a project's experiments table or compare view
// (its filter, sort, columns, runs, axis, colouring: everything a view keeps in its URL),
// listed in a menu on both views to reopen. Kept in this browser (localStorage, per project):
// the server stores no UI state.

import { h } from "./dom.js";
import { popover } from "./menu.js";

const MAX_VIEWS = 100;

function storageKey(projectId) {
  return `mltrail.views.${projectId}`;
}

/** The project's saved views, `[{name, route}]`, most recent first. */
export function savedViews(projectId) {
  try {
    const views = JSON.parse(localStorage.getItem(storageKey(projectId)) || "[]");
    return Array.isArray(views) ? views.filter((v) => typeof v?.name === "string" && typeof v?.route === "string") : [];
  } catch {
    return [];
  }
}

function store(projectId, views) {
  localStorage.setItem(storageKey(projectId), JSON.stringify(views.slice(0, MAX_VIEWS)));
}

/** Save `route` (an in-app route, e.g. `/projects/3?filter=...`) as `name` (a same name is replaced). */
export function saveView(projectId, name, route) {
  const views = savedViews(projectId).filter((v) => v.name !== name);
  store(projectId, [{ name, route }, ...views]);
}

export function deleteView(projectId, name) {
  store(projectId, savedViews(projectId).filter((v) => v.name !== name));
}

/** The current route, from the address bar. */
function currentRoute() {
  return location.hash.replace(/^#/, "") || "/";
}

/** The "Saved views" menu: save the current view under a name; open or delete a saved one. */
export function savedViewsMenu(projectId, { signal } = {}) {
  return popover("Saved views ▾", (panel, close) => {
    const name = h("input", { type: "text", name: "view-name", required: true, maxlength: 100,
      "aria-label": "Name of the current view", placeholder: "Name this view" });
    const status = h("p", { class: "muted saved-status", role: "status" });
    const list = h("ul", { class: "saved-list" });
    const fill = () => {
      const views = savedViews(projectId);
      list.replaceChildren(...views.map((view) => h("li", { dataset: { name: view.name } },
        h("a", { href: `#${view.route}`, class: "saved-open", onclick: () => close() }, view.name),
        h("button", { type: "button", class: "saved-delete", "aria-label": `Delete the saved view ${view.name}`,
          onclick: () => { deleteView(projectId, view.name); fill(); } }, "✕"))));
      if (!views.length) list.append(h("li", { class: "muted" }, "No saved views yet."));
    };
    const form = h("form", { class: "saved-form", onsubmit: (event) => {
      event.preventDefault();
      const chosen = name.value.trim();
      if (!chosen) return;
      try {
        saveView(projectId, chosen, currentRoute());
        status.textContent = `Saved “${chosen}”.`;
        name.value = "";
      } catch (error) {
        status.textContent = `Could not save: ${error.message}`;
      }
      fill();
    } }, name, h("button", { type: "submit", class: "saved-save" }, "Save"));
    fill();
    panel.append(form, status, list, h("p", { class: "muted hint" }, "Saved in this browser."));
  }, { className: "saved-views", title: "Saved views", signal });
}

// Managing runs where they are seen: rename, description, tags and notes (one PATCH), archive,
// move to the trash and restore (the lifecycle routes of docs/rest.md). The experiment page and
// the experiments table call these; the server checks every rule.

import { api, experimentPath } from "./api.js";
import { h } from "./dom.js";

/** The lifecycle actions: label, request, and which states they apply to. */
export const LIFECYCLE = {
  archive: { label: "Archive", method: "POST", rest: "/archive", from: ["active"] },
  delete: { label: "Move to trash", method: "DELETE", rest: "", from: ["active", "archived"] },
  restore: { label: "Restore", method: "POST", rest: "/restore", from: ["archived", "deleted"] },
};

/** The lifecycle state of a record ("active" when the server sends none). */
export function stateOf(experiment) {
  return experiment.state ?? "active";
}

/** Run one lifecycle action on one experiment; answers the experiment record. */
export function runLifecycle(action, projectId, experimentId, signal) {
  const { method, rest } = LIFECYCLE[action];
  return api(experimentPath(projectId, experimentId, rest), { method, signal });
}

/** Tags typed as "a, b,c" (empty entries dropped, duplicates once). */
export function parseTags(text) {
  return [...new Set(String(text).split(",").map((t) => t.trim()).filter(Boolean))];
}

/**
 * The edit form of an experiment: name, description, tags, notes. `onSaved(record)` gets the
 * server's answer; `onCancel()` closes it. A refused field is named under the form.
 */
export function editForm(experiment, { signal, onSaved, onCancel }) {
  const name = h("input", { name: "display_name", value: experiment.display_name, maxlength: 140, required: true, "aria-label": "Name" });
  const description = h("input", { name: "description", value: experiment.description ?? "", maxlength: 140, "aria-label": "Description" });
  const tags = h("input", { name: "tags", value: (experiment.tags || []).join(", "), "aria-label": "Tags, separated by commas" });
  const notes = h("textarea", { name: "notes", rows: 6, "aria-label": "Notes (markdown)" });
  notes.value = experiment.notes ?? "";
  const error = h("p", { class: "form-error edit-error", role: "alert" });
  const row = (label, input) => h("label", { class: "edit-row" }, h("span", {}, label), input);
  async function submit(event) {
    event.preventDefault();
    error.textContent = "";
    const body = { display_name: name.value, description: description.value, tags: parseTags(tags.value), notes: notes.value };
    try {
      onSaved(await api(experimentPath(experiment.project_id, experiment.experiment_id), { method: "PATCH", body, signal }));
    } catch (err) {
      if (err.status === 401 || err.status === undefined) throw err;
      error.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
    }
  }
  return h("form", { class: "edit-form", onsubmit: submit },
    row("Name", name), row("Description", description), row("Tags", tags), row("Notes", notes),
    h("div", { class: "edit-buttons" },
      h("button", { type: "submit", class: "save" }, "Save"),
      h("button", { type: "button", class: "cancel", onclick: onCancel }, "Cancel")),
    error);
}

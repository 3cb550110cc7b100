// Projects: the list with experiment counts and last activity, and a form to create one.

import { api } from "../api.js";
import { h, link } from "../dom.js";
import { formatCount, formatTime } from "../format.js";

function projectsTable(projects) {
  if (!projects.length) {
    return h("p", { class: "empty muted" },
      "No projects yet. Create one here, or start a run with mltrail.start(project=\"name\").");
  }
  const sorted = [...projects].sort((a, b) => (b.last_activity ?? b.created_at) - (a.last_activity ?? a.created_at));
  return h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Projects" }, h("table", { class: "data projects" },
    h("thead", {}, h("tr", {},
      ["#", "Name", "Description", "Experiments", "Last activity", "Created"].map((t) => h("th", {}, t)))),
    h("tbody", {}, sorted.map((p) => h("tr", { dataset: { projectId: p.id } },
      h("td", { class: "num" }, p.id),
      h("td", { class: "name" }, link(`/projects/${p.id}`, p.display_name)),
      h("td", { class: "description" }, p.description),
      h("td", { class: "num count" }, formatCount(p.experiment_count ?? 0)),
      h("td", {}, formatTime(p.last_activity)),
      h("td", {}, formatTime(p.created_at)))))));
}

function createForm(ctx) {
  const name = h("input", { name: "display_name", placeholder: "Name", maxlength: 140, required: true, "aria-label": "Project name" });
  const description = h("input", { name: "description", placeholder: "Description (optional)", maxlength: 140, "aria-label": "Project description" });
  const error = h("span", { class: "form-error", role: "alert" });
  const form = h("form", { class: "inline-form create-project", onsubmit: submit },
    name, description, h("button", { type: "submit" }, "Create project"), error);

  async function submit(event) {
    event.preventDefault();
    error.textContent = "";
    try {
      const project = await api("/projects", {
        method: "POST", body: { display_name: name.value, description: description.value },
      });
      location.hash = `#/projects/${project.id}`;
    } catch (err) {
      if (err.status === 401) return ctx.fail(err);
      error.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
    }
  }
  return form;
}

/** Render the projects page. */
export async function renderProjects(ctx) {
  const projects = await api("/projects", { signal: ctx.signal });
  ctx.setTitle("Projects");
  ctx.main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Projects"), createForm(ctx)),
    projectsTable(projects),
  );
}

// The single-page app: a hash router (every view is a bookmarkable URL such as
// #/projects/3/experiments/5) that renders one view at a time and maps API errors to the
// login form (401) or the not-found page (404).

import { ApiError, api, getToken, setToken } from "./api.js";
import { h, setChildren } from "./dom.js";
import { renderLogin } from "./views/login.js";
import { renderError, renderNotFound } from "./views/notfound.js";

// Views load when first shown (a dynamic import each), so opening one page does not fetch and
// parse the code of every other (the charts and uPlot stay out of the experiments table's start).
const view = (module, name) => async (...args) => (await import(module))[name](...args);
const renderProjects = view("./views/projects.js", "renderProjects");
const renderExperiments = view("./views/experiments.js", "renderExperiments");
const renderExperiment = view("./views/experiment.js", "renderExperiment");
const renderCompare = view("./views/compare.js", "renderCompare");
const renderJobs = view("./views/jobs.js", "renderJobs");
const renderJob = view("./views/jobs.js", "renderJob");

const ROUTES = [
  [/^\/?$/, renderProjects],
  [/^\/projects\/?$/, renderProjects],
  [/^\/projects\/(\d+)\/?$/, (ctx, [p]) => renderExperiments(ctx, Number(p))],
  [/^\/projects\/(\d+)\/experiments\/(\d+)\/?$/, (ctx, [p, e]) => renderExperiment(ctx, Number(p), Number(e))],
  [/^\/projects\/(\d+)\/compare\/?$/, (ctx, [p]) => renderCompare(ctx, Number(p))],
  [/^\/jobs\/?$/, renderJobs],
  [/^\/jobs\/(\d+)\/?$/, (ctx, [j]) => renderJob(ctx, Number(j))],
  [/^\/login\/?$/, (ctx) => renderLogin(ctx, "")],
  // the links the MLflow client prints ("View run at .../#/experiments/1/runs/1-5"):
  // an MLflow experiment is a project, a run id "<project>-<experiment>" (docs/mlflow.md)
  [/^\/experiments\/(\d+)\/?$/, (ctx, [p]) => renderExperiments(ctx, Number(p))],
  [/^\/experiments\/\d+\/runs\/(\d+)-(\d+)\/?$/, (ctx, [p, e]) => renderExperiment(ctx, Number(p), Number(e))],
];

const main = document.getElementById("app");
let current = null;

/** The current route as {path, params: URLSearchParams}. */
export function currentRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  return { path, params: new URLSearchParams(search) };
}

/** Navigate to an in-app route (adds a history entry). */
export function navigate(route) {
  location.hash = "#" + route;
}

/** Update the current route's query without re-rendering (keeps views bookmarkable). */
export function replaceQuery(params) {
  const { path } = currentRoute();
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "" && value !== false) search.set(key, String(value));
  }
  const text = search.toString();
  history.replaceState(history.state, "", "#" + path + (text ? "?" + text : ""));
}

function handleError(ctx, error) {
  if (ctx.signal.aborted || error?.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) {
    renderLogin(ctx, getToken() ? "Your token was rejected or has expired. Sign in again." :
      "This server needs an API token.");
  } else if (error instanceof ApiError && error.status === 404) {
    renderNotFound(ctx, error.message);
  } else {
    console.error(error);
    renderError(ctx, error);
  }
}

async function render() {
  if (current) current.controller.abort();
  const controller = new AbortController();
  const { path, params } = currentRoute();
  const ctx = {
    main, params, path, signal: controller.signal,
    fail: (error) => handleError(ctx, error),
    signedIn,
    setTitle: (title) => { document.title = title ? `${title} · mltrail` : "mltrail"; },
  };
  current = { controller, ctx };
  main.replaceChildren(h("p", { class: "muted loading" }, "Loading…"));
  main.dataset.route = path;
  ctx.setTitle("");
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    renderNotFound(ctx, `There is no page at ${path}.`);
    return;
  }
  try {
    await route[1](ctx, path.match(route[0]).slice(1));
  } catch (error) {
    handleError(ctx, error);
  }
}

async function showUser() {
  const slot = document.getElementById("user");
  try {
    const me = await api("/me");
    setChildren(slot,
      h("span", { class: "muted" }, me?.name ?? ""),
      getToken() ? h("button", { class: "link-button", type: "button", onclick: signOut }, "Sign out") : null,
    );
  } catch {
    slot.replaceChildren();
  }
}

function signOut() {
  setToken(null);
  showUser();
  render();
}

/** After a successful sign-in: refresh the header and show the page that asked for it. */
export function signedIn() {
  showUser();
  if (currentRoute().path.startsWith("/login")) navigate("/");
  else render();
}

// Real paths (/projects/3) are served index.html by the server; turn them into hash routes.
if (location.pathname !== "/" && location.pathname !== "/index.html") {
  history.replaceState(null, "", "/#" + location.pathname + location.search + location.hash.replace(/^#.*/, ""));
}
window.addEventListener("hashchange", render);
showUser();
render();

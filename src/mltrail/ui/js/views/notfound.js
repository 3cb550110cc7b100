// The not-found page and the generic error page: a clear message, never a blank screen.

import { h, link } from "../dom.js";

/** Render "Not found" with the server's message and a way back. */
export function renderNotFound(ctx, message) {
  ctx.setTitle("Not found");
  ctx.main.replaceChildren(
    h("section", { class: "not-found" },
      h("h1", {}, "Not found"),
      h("p", { class: "message" }, message || "This page does not exist."),
      h("p", {}, link("/", "Back to projects"))),
  );
}

/** Render an unexpected error as one readable line. */
export function renderError(ctx, error) {
  ctx.setTitle("Error");
  ctx.main.replaceChildren(
    h("section", { class: "error-page" },
      h("h1", {}, "Something went wrong"),
      h("p", { class: "message" }, error?.message || String(error)),
      h("p", {}, link("/", "Back to projects"))),
  );
}

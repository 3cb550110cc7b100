// The login form: stores the API token in localStorage, then shows the page that needed it.

import { api, setToken } from "../api.js";
import { h } from "../dom.js";

/** Render the token form with an explanation of why it is shown. */
export function renderLogin(ctx, reason) {
  ctx.setTitle("Sign in");
  const input = h("input", {
    type: "password", name: "token", id: "token", autocomplete: "current-password",
    required: true, placeholder: "mlt_…",
  });
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "login-form", onsubmit: submit },
    h("h1", {}, "Sign in"),
    reason ? h("p", { class: "login-reason" }, reason) : null,
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { class: "muted" }, "Ask the server's admin for one (", h("code", {}, "mltrail token --help"), ")."),
    h("button", { type: "submit" }, "Sign in"),
    error);

  async function submit(event) {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await api("/me");
      ctx.signedIn();
    } catch (err) {
      setToken(null);
      error.textContent = err.status === 401 ? "That token was not accepted." : err.message;
    }
  }

  ctx.main.replaceChildren(form);
  input.focus();
}

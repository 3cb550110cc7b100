// Pop-up panels (the columns menu, a run's actions): a button that opens a panel kept inside
// the viewport, closed by Esc (focus back on the button), a click outside, or the view ending.

import { h } from "./dom.js";

const MARGIN = 8;

/**
 * A button and its pop-up panel.
 * @param {string|Node} label the button's content
 * @param {(panel: HTMLElement, close: () => void) => void} fill builds the panel's content on
 *     every opening
 * @param {{className?: string, title?: string, signal?: AbortSignal}} [options]
 */
export function popover(label, fill, { className = "", title, signal } = {}) {
  const panel = h("div", { class: "popover-panel", hidden: true, role: "dialog", "aria-label": title ?? String(label) });
  const button = h("button", {
    type: "button", class: "popover-button", "aria-haspopup": "dialog", "aria-expanded": "false",
    title: title ?? null, onclick: () => (panel.hidden ? open() : close()),
  }, label);
  const element = h("div", { class: `popover ${className}`.trim() }, button, panel);

  const onKey = (event) => {
    if (event.key === "Escape") {
      close();
      button.focus();
    }
  };
  const onPointer = (event) => { if (!element.contains(event.target)) close(); };
  const onMove = () => place();

  function place() {
    const anchor = button.getBoundingClientRect();
    const width = Math.min(panel.scrollWidth || 280, window.innerWidth - 2 * MARGIN);
    const left = Math.max(MARGIN, Math.min(anchor.left, window.innerWidth - width - MARGIN));
    const below = window.innerHeight - anchor.bottom - 2 * MARGIN;
    Object.assign(panel.style, {
      left: `${left}px`, top: `${anchor.bottom + 4}px`,
      maxWidth: `${window.innerWidth - 2 * MARGIN}px`, maxHeight: `${Math.max(120, below)}px`,
    });
  }

  function open() {
    panel.replaceChildren();
    fill(panel, close);
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    place();
    document.addEventListener("keydown", onKey);
    document.addEventListener("pointerdown", onPointer, true);
    window.addEventListener("resize", onMove);
    window.addEventListener("scroll", onMove, true);
    panel.querySelector("input, button, select")?.focus();
  }

  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("pointerdown", onPointer, true);
    window.removeEventListener("resize", onMove);
    window.removeEventListener("scroll", onMove, true);
  }

  signal?.addEventListener("abort", close);
  return { element, button, panel, open, close, isOpen: () => !panel.hidden };
}

/**
 * A run's actions menu. `actions()` returns `{id, label, enabled, run, title?}` entries, read
 * at every opening (so they follow the run's state); a later server API adds entries (delete,
 * archive, rename) without changing the menu.
 */
export function actionsMenu(actions, { signal, label = "Actions" } = {}) {
  return popover(`${label} ▾`, (panel, close) => {
    panel.append(h("ul", { class: "menu-list", role: "menu" }, actions().map((action) => h("li", { role: "none" },
      h("button", {
        type: "button", role: "menuitem", class: `menu-item action-${action.id}`,
        disabled: !action.enabled, title: action.title ?? null,
        onclick: async () => { close(); await action.run(); },
      }, action.label)))));
  }, { className: "actions-menu", title: label, signal });
}

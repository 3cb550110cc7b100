// Building DOM nodes safely: text always goes through textContent, never innerHTML, so names,
// metric keys, chart labels and log lines are shown literally, whatever they contain.

/**
 * Create an element.
 * @param {string} tag
 * @param {Object} [attrs] attributes; `class`, `dataset`, `on<Event>` handlers, boolean props
 * @param {...(Node|string|number|null|undefined|Array)} children text or nodes
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "checked" || name === "value" || name === "disabled" || name === "selected") {
      el[name] = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (strings become text nodes; arrays are flattened; null is skipped). */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** A link to an in-app route, e.g. link("/projects/3", "My project"). */
export function link(route, ...children) {
  return h("a", { href: "#" + route }, ...children);
}

/** A two-column key/value table, or a muted "none" line when empty. */
export function keyValueTable(entries, { emptyText = "None", format = String } = {}) {
  if (!entries.length) return h("p", { class: "muted" }, emptyText);
  return h(
    "table",
    { class: "kv" },
    h(
      "tbody",
      {},
      entries.map(([key, value]) => h("tr", {}, h("th", {}, key), h("td", {}, format(value)))),
    ),
  );
}

/** Sleep that ends early (resolving) when the signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Replace an element's children; like replaceChildren, but null/false children are skipped. */
export function setChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

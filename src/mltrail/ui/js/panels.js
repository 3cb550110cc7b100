// Chart panel layout: each chart's size (small, medium, large) and the charts' order, chosen
// from the chart's own tools and kept in the browser (localStorage, per project and view), so
// a project's experiment pages, or its compare views, open with the layout last chosen.

import { h } from "./dom.js";

export const PANEL_SIZES = [["s", "Small"], ["m", "Medium"], ["l", "Large"]];
/** Plot height (CSS px) per size; a large chart also takes a whole row of the grid. */
export const PANEL_HEIGHTS = { s: 160, m: 240, l: 420 };

function readStore(key) {
  try {
    const value = JSON.parse(localStorage.getItem(key) || "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {}; // unreadable (or storage disabled): the default layout
  }
}

export class PanelLayout {
  /** @param {string} scope e.g. `3/compare` (project 3's compare views) */
  constructor(scope) {
    this.key = `mltrail.panels.${scope}`;
    const saved = readStore(this.key);
    this.order = Array.isArray(saved.order) ? saved.order.map(String) : [];
    this.sizes = saved.sizes && typeof saved.sizes === "object" ? saved.sizes : {};
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify({ order: this.order, sizes: this.sizes }));
    } catch {
      // storage full or disabled: the layout lasts for this page only
    }
  }

  sizeOf(id) {
    const size = this.sizes[id];
    return size in PANEL_HEIGHTS ? size : "m";
  }

  setSize(id, size) {
    if (size === "m") delete this.sizes[id];
    else this.sizes[id] = size;
    this.save();
  }

  /** `ids` (the charts shown, in their default order) in the saved order; new ones last. */
  arrange(ids) {
    const rank = new Map(this.order.map((id, i) => [id, i]));
    return ids.map((id, i) => [id, i]).sort(([a, i], [b, j]) =>
      (rank.get(a) ?? Infinity) - (rank.get(b) ?? Infinity) || i - j).map(([id]) => id);
  }

  /** Move `id` one place (`delta` -1 or +1) within `ids`, the order shown; returns the new order. */
  move(ids, id, delta) {
    const order = [...ids];
    const at = order.indexOf(id);
    const to = at + delta;
    if (at < 0 || to < 0 || to >= order.length) return order;
    [order[at], order[to]] = [order[to], order[at]];
    // keep the places of charts not shown now (another run's metrics) after the shown ones
    this.order = [...order, ...this.order.filter((known) => !order.includes(known))];
    this.save();
    return order;
  }
}

/**
 * A chart's layout tools: a size choice and move earlier / later buttons.
 * @param {string} title the chart's title (for the controls' names)
 * @param {string} size the current size
 * @param {{onSize: (size: string) => void, onMove: (delta: number, button: HTMLElement) => void}} handlers
 */
export function panelTools(title, size, { onSize, onMove }) {
  const select = h("select", { class: "chart-tool chart-size", "aria-label": `Size of ${title}`,
    onchange: () => onSize(select.value) },
  PANEL_SIZES.map(([value, label]) => h("option", { value, selected: value === size }, label)));
  const move = (delta, label, text) => h("button", {
    type: "button", class: `chart-tool chart-move chart-move-${delta < 0 ? "earlier" : "later"}`,
    "aria-label": `Move ${title} ${label}`, title: `Move this chart ${label}`,
    onclick: (event) => onMove(delta, event.currentTarget),
  }, text);
  return [select, move(-1, "earlier", "◀"), move(1, "later", "▶")];
}

// The floating tooltip of a chart (a uPlot plugin). It names the x it shows ("iteration
// 1,200"); each line's value is the one at exactly that x, or, when the line has no point
// there, its nearest point within a few pixels, labelled with that point's own x. With many
// lines it lists those nearest the pointer, sorted by value, and says how many it left out.

import { h, setChildren } from "./dom.js";
import { formatAxisValue } from "./axes.js";
import { formatCount, formatValue } from "./format.js";

const MAX_ROWS = 10;
const OFFSET = 14;

/** How an x value reads in the tooltip: category names, iterations with separators. */
export function formatX(chart, x) {
  const { categories, xLabel, xKind } = chart.options;
  if (categories) return `${xLabel} ${categories[Math.round(x)] ?? x}`;
  const timed = formatAxisValue(xKind, x);
  if (timed !== null) return `${xLabel} ${timed}`;
  const text = Number.isInteger(x) && Math.abs(x) >= 1e4 ? formatCount(x) : formatValue(x);
  return `${xLabel} ${text}`;
}

function swatch(colour) {
  const el = h("span", { class: "swatch", "aria-hidden": "true" });
  el.style.background = colour;
  return el;
}

/**
 * One row per visible line that has a value at or near the cursor.
 * @returns {{rows: Array, x: number}|null}
 */
export function rowsAt(chart, u) {
  const idx = u.cursor.idx;
  if (idx === null || idx === undefined) return null;
  const xs = u.data[0];
  const x = xs[idx];
  const rows = [];
  chart.meta.forEach((m, i) => {
    const si = i + 1;
    if (m.role !== "main" || !u.series[si].show) return;
    let at = idx;
    let value = u.data[si][idx];
    if (value === null || value === undefined) {
      at = u.cursor.idxs?.[si];
      value = at === null || at === undefined ? null : u.data[si][at];
    }
    if (value === null || value === undefined) return;
    const line = chart.lines[m.line];
    const rawSeries = chart.meta.findIndex((r) => r.line === m.line && r.role === "raw");
    const raw = rawSeries >= 0 ? u.data[rawSeries + 1][at] : null;
    rows.push({ line, value, raw, x: xs[at], pos: u.valToPos(value, "y") });
  });
  return { rows, x };
}

function pickRows(rows, cursorTop) {
  if (rows.length <= MAX_ROWS) return { shown: rows.sort((a, b) => b.value - a.value), hidden: 0 };
  const nearest = [...rows].sort((a, b) => Math.abs(a.pos - cursorTop) - Math.abs(b.pos - cursorTop));
  return { shown: nearest.slice(0, MAX_ROWS).sort((a, b) => b.value - a.value), hidden: rows.length - MAX_ROWS };
}

function rowElement(chart, row, x) {
  const elsewhere = row.x !== x;
  return h("div", { class: `tooltip-row${elsewhere ? " elsewhere" : ""}`, dataset: { x: row.x, label: row.line.label } },
    swatch(row.line.colour),
    h("span", { class: "tooltip-label" }, row.line.label),
    h("span", { class: "tooltip-value" }, formatValue(row.value)),
    row.raw !== null && row.raw !== undefined && row.raw !== row.value
      ? h("span", { class: "tooltip-raw muted" }, `raw ${formatValue(row.raw)}`) : null,
    elsewhere ? h("span", { class: "tooltip-at muted" }, `at ${formatX(chart, row.x)}`) : null);
}

/** The uPlot plugin; `chart` is the LineChart (its `meta`, `lines` and `options`). */
export function tooltipPlugin(chart) {
  let tip = null;

  function hide() {
    if (tip) tip.hidden = true;
  }

  function show(u) {
    const found = rowsAt(chart, u);
    if (!found || u.cursor.left < 0 || !found.rows.length) return hide();
    const { shown, hidden } = pickRows(found.rows, u.cursor.top);
    setChildren(tip,
      h("div", { class: "tooltip-head" }, formatX(chart, found.x)),
      shown.map((row) => rowElement(chart, row, found.x)),
      hidden ? h("div", { class: "tooltip-more muted" }, `… ${hidden} more`) : null);
    tip.hidden = false;
    place(u);
  }

  function place(u) {
    // the card is the positioning parent: the tooltip may leave the plot, not the card
    const card = chart.card.getBoundingClientRect();
    const over = u.over.getBoundingClientRect();
    const left = over.left - card.left + u.cursor.left;
    const top = over.top - card.top + u.cursor.top;
    const width = tip.offsetWidth;
    const x = left + OFFSET + width <= card.width ? left + OFFSET : Math.max(0, left - OFFSET - width);
    tip.style.left = `${x}px`;
    tip.style.top = `${Math.max(0, top - tip.offsetHeight / 2)}px`;
  }

  return {
    hooks: {
      init: () => {
        tip = h("div", { class: "chart-tooltip", hidden: true, role: "tooltip" });
        chart.card.append(tip);
      },
      setCursor: (u) => show(u),
      destroy: () => tip?.remove(),
    },
  };
}

// Axis tick labels. uPlot's default formatter keeps three decimals, so 0.0031 and 0.0032 both
// read "0.003" and 1e-5 reads "0" (also on a log axis); long iteration numbers touch. Here
// labels get as many digits as the tick step needs (more until they all differ), large
// numbers a k/M/G suffix, tiny ones an exponent, and log axes label only 1, 2 and 5 x 10^k.

const SUFFIXES = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
const CHAR_WIDTH = 7; // px per character of the 12px axis font, for spacing estimates

function trimZeros(text) {
  return text.includes(".") && !text.includes("e") ? text.replace(/\.?0+$/, "") : text;
}

function exponent(value, digits) {
  const [mantissa, power] = value.toExponential(digits).split("e");
  return `${trimZeros(mantissa)}e${Number(power)}`;
}

/** One label with `digits` digits after the point (of the suffixed or exponent form). */
function label(value, digits, scale) {
  if (value === 0) return "0";
  if (scale === "exp") return exponent(value, digits);
  if (scale) return trimZeros((value / scale[0]).toFixed(digits)) + scale[1];
  return trimZeros(value.toFixed(digits));
}

function chooseScale(splits, step) {
  const largest = Math.max(...splits.map((v) => Math.abs(v)));
  if (largest >= 1e4) return SUFFIXES.find(([size]) => largest >= size) ?? null;
  if (largest > 0 && largest < 1e-3) return "exp";
  if (step > 0 && step < 1e-4 && largest < 1) return "exp";
  return null;
}

/**
 * Labels for linear ticks: every label distinct, no more digits than needed.
 * @param {number[]} splits tick values
 * @param {number} step the distance between ticks (uPlot's foundIncr)
 * @returns {string[]}
 */
export function tickLabels(splits, step) {
  const values = splits.filter((v) => v !== null && v !== undefined);
  if (!values.length) return splits.map(() => "");
  const scale = chooseScale(values, step);
  const unit = scale === "exp" ? 0 : scale ? scale[0] : 1;
  let digits = 0;
  if (scale !== "exp" && step > 0) digits = Math.max(0, Math.ceil(-Math.log10(step / unit) - 1e-9));
  // more digits until every label is distinct and reads back as its tick (0.25, not 0.3)
  const tolerance = Math.abs(step || values[0] || 1) * 1e-6;
  for (let tries = 0; tries < 12; tries++, digits++) {
    const out = splits.map((v) => (v === null || v === undefined ? "" : label(v, digits, scale)));
    const exact = values.every((v) => Math.abs(parseLabel(label(v, digits, scale)) - v) <= tolerance);
    if (exact && new Set(out.filter(Boolean)).size === values.length) return out;
  }
  return splits.map((v) => (v === null || v === undefined ? "" : String(v)));
}

/** The number a tick label stands for ("4.5M" -> 4500000). */
export function parseLabel(text) {
  const suffix = SUFFIXES.find(([, s]) => text.endsWith(s));
  return suffix ? Number(text.slice(0, -1)) * suffix[0] : Number(text);
}

/** Labels for a log axis: 1, 2 and 5 x 10^k labelled (only powers of ten when crowded). */
export function logTickLabels(splits) {
  const mantissa = (v) => Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9));
  const decades = new Set(splits.filter((v) => v > 0).map((v) => Math.floor(Math.log10(v) + 1e-9)));
  const keep = decades.size > 3 ? new Set([1]) : new Set([1, 2, 5]);
  return splits.map((v) => {
    if (!(v > 0) || !keep.has(mantissa(v))) return "";
    if (v >= 1e4 || v < 1e-3) return exponent(v, 0);
    return String(Number(v.toPrecision(1)));
  });
}

/** Estimated width in px of the widest label of a range (uPlot's minimum tick spacing). */
export function labelSpace(min, max) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return 50;
  const step = Math.abs(max - min) / 4 || Math.abs(max) || 1;
  const widest = Math.max(...tickLabels([min, max, (min + max) / 2], step).map((t) => t.length));
  return Math.max(40, widest * CHAR_WIDTH + 18);
}

/** Width in px of a y axis whose labels are `labels` (uPlot's axis size). */
export function axisWidth(labels) {
  const widest = Math.max(1, ...(labels || []).map((t) => String(t ?? "").length));
  return Math.min(110, widest * CHAR_WIDTH + 16);
}

/**
 * A range padded for a single value (uPlot would draw one point on the frame's edge):
 * [v - pad, v + pad], integers kept for iteration axes.
 */
export function paddedRange(min, max, { integer = false } = {}) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min !== max) return [min, max];
  const pad = integer ? Math.max(1, Math.ceil(Math.abs(min) * 0.05)) : Math.abs(min) * 0.1 || 1;
  return [min - pad, max + pad];
}

/** About `count` round tick values (steps of 1, 2, 2.5 or 5 x 10^k) inside [min, max]. */
export function niceTicks(min, max, count = 4) {
  const span = max - min;
  if (!(span > 0)) return { values: [min], step: 0 };
  const magnitude = 10 ** Math.floor(Math.log10(span / count));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count) ?? 10 * magnitude;
  const values = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) {
    values.push(Number(v.toPrecision(12)));
  }
  return { values, step };
}

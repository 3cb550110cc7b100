// Colours for many lines. A fixed 10-colour palette repeats from the 11th run; this one is
// generated: candidates on a grid of OKLCH lightness, chroma and hue (within sRGB), picked
// one at a time as the candidate farthest (in OKLab) from every colour picked so far. The
// order is fixed, so run i keeps its colour whatever the number of runs; the 100 first
// colours stay at least 0.035 apart in OKLab (a just-noticeable difference is about 0.02). Light and dark themes get lightness ranges
// that read on their backgrounds.

const HUE_STEP = 5;
const CHROMAS = [0.09, 0.14, 0.19];
const LIGHTNESS = { light: [0.4, 0.48, 0.56, 0.63], dark: [0.64, 0.72, 0.8, 0.87] };
const SIZE = 160; // colours generated per theme; later indices reuse them in order
const FIRST = [0.12, 0.47, 0.71]; // the familiar first blue, in sRGB

/** Colours of the experiment page's phases (train / validation / test). */
export const PHASE_COLOURS = { train: "#1f77b4", validation: "#e8590c", test: "#2b8a3e" };

const toLinear = (c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const toGamma = (c) => (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055);

/** sRGB (0..1 each) to OKLab. */
export function oklab([r, g, b]) {
  const [lr, lg, lb] = [r, g, b].map(toLinear);
  const l = Math.cbrt(0.4122214708 * lr + 0.5363325363 * lg + 0.0514459929 * lb);
  const m = Math.cbrt(0.2119034982 * lr + 0.6806995451 * lg + 0.1073969566 * lb);
  const s = Math.cbrt(0.0883024619 * lr + 0.2817188376 * lg + 0.6299787005 * lb);
  return [
    0.2104542553 * l + 0.793617785 * m - 0.0040720468 * s,
    1.9779984951 * l - 2.428592205 * m + 0.4505937099 * s,
    0.0259040371 * l + 0.7827717662 * m - 0.808675766 * s,
  ];
}

/** OKLCH to sRGB (0..1 each), or null outside the sRGB gamut. */
function fromOklch(L, C, hue) {
  const a = C * Math.cos((hue * Math.PI) / 180);
  const b = C * Math.sin((hue * Math.PI) / 180);
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  const rgb = [
    4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
    -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
    -0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s,
  ];
  if (rgb.some((c) => c < -1e-4 || c > 1 + 1e-4)) return null;
  return rgb.map((c) => toGamma(Math.min(1, Math.max(0, c))));
}

function hex(rgb) {
  return "#" + rgb.map((c) => Math.round(c * 255).toString(16).padStart(2, "0")).join("");
}

const distance = (p, q) => Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);

function generate(theme) {
  const candidates = [];
  for (const L of LIGHTNESS[theme]) {
    for (let hue = 0; hue < 360; hue += HUE_STEP) {
      for (const C of CHROMAS) {
        const rgb = fromOklch(L, C, hue);
        if (rgb) candidates.push({ rgb, lab: oklab(rgb) });
      }
    }
  }
  const nearest = candidates.map(() => Infinity);
  const start = oklab(FIRST);
  let next = 0;
  candidates.forEach((c, i) => { if (distance(c.lab, start) < distance(candidates[next].lab, start)) next = i; });
  const picked = [];
  while (picked.length < Math.min(SIZE, candidates.length)) {
    const chosen = candidates[next];
    picked.push(hex(chosen.rgb));
    let far = 0;
    candidates.forEach((c, i) => {
      nearest[i] = Math.min(nearest[i], distance(c.lab, chosen.lab));
      if (nearest[i] > nearest[far]) far = i;
    });
    next = far;
  }
  return picked;
}

const generated = {};

/** The theme the page is drawn in: "dark" under prefers-color-scheme: dark. */
export function currentTheme() {
  return globalThis.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** The i-th colour of the palette (stable: run i keeps it whatever the number of runs). */
export function colourAt(index, theme = currentTheme()) {
  generated[theme] ??= generate(theme);
  const colours = generated[theme];
  return colours[((index % colours.length) + colours.length) % colours.length];
}

/** `n` colours, the first `n` of the palette. */
export function palette(n, theme = currentTheme()) {
  return Array.from({ length: n }, (_, i) => colourAt(i, theme));
}

/** "#rrggbb" with an alpha, as an rgba() string (faded raw lines, bands). */
export function withAlpha(colour, alpha) {
  const n = parseInt(colour.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

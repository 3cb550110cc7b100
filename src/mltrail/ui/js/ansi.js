// ANSI SGR colour codes in log lines rendered as spans (text via textContent, styles via
// classes or CSSOM, so the strict Content-Security-Policy holds and nothing is parsed as HTML).

const ESCAPE = /\x1b\[([0-9;]*)([A-Za-z])/g;

function freshStyle() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
}

function xterm256(n) {
  if (n < 16) return null;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  const i = n - 16;
  const level = (c) => (c === 0 ? 0 : 55 + c * 40);
  return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
}

// Extended colour (38/48 ; 5 ; n  or  38/48 ; 2 ; r ; g ; b); returns [colour, codes used].
function extendedColour(codes, i) {
  if (codes[i + 1] === 5) {
    const n = codes[i + 2] ?? 0;
    return [n < 16 ? `c${n < 8 ? 30 + n : 82 + n}` : xterm256(n), 2];
  }
  if (codes[i + 1] === 2) {
    const [r, g, b] = [codes[i + 2] ?? 0, codes[i + 3] ?? 0, codes[i + 4] ?? 0];
    return [`rgb(${r},${g},${b})`, 4];
  }
  return [null, 0];
}

function applyCodes(style, codes) {
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, freshStyle());
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 22) style.bold = style.dim = false;
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) style.fg = `c${c}`;
    else if (c === 39) style.fg = null;
    else if ((c >= 40 && c <= 47) || (c >= 100 && c <= 107)) style.bg = `c${c - 10}`;
    else if (c === 49) style.bg = null;
    else if (c === 38 || c === 48) {
      const [colour, used] = extendedColour(codes, i);
      if (c === 38) style.fg = colour;
      else style.bg = colour;
      i += used;
    }
  }
}

function styledSpan(text, style) {
  const span = document.createElement("span");
  span.textContent = text;
  const classes = [];
  if (style.bold) classes.push("ansi-bold");
  if (style.dim) classes.push("ansi-dim");
  if (style.italic) classes.push("ansi-italic");
  if (style.underline) classes.push("ansi-underline");
  if (style.fg?.startsWith("c")) classes.push(`ansi-fg-${style.fg.slice(1)}`);
  else if (style.fg) span.style.color = style.fg;
  if (style.bg?.startsWith("c")) classes.push(`ansi-bg-${style.bg.slice(1)}`);
  else if (style.bg) span.style.backgroundColor = style.bg;
  if (classes.length) span.className = classes.join(" ");
  return span;
}

function isPlain(style) {
  return !style.fg && !style.bg && !style.bold && !style.dim && !style.italic && !style.underline;
}

/**
 * Render a line that may contain ANSI escapes as a fragment of text nodes and spans.
 * Non-colour escapes (cursor moves, erase) are dropped.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderAnsi(text) {
  const fragment = document.createDocumentFragment();
  const style = freshStyle();
  let last = 0;
  const emit = (chunk) => {
    if (!chunk) return;
    fragment.append(isPlain(style) ? document.createTextNode(chunk) : styledSpan(chunk, style));
  };
  for (const match of text.matchAll(ESCAPE)) {
    emit(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[2] === "m") {
      const codes = match[1] === "" ? [0] : match[1].split(";").map((s) => Number(s) || 0);
      applyCodes(style, codes);
    }
  }
  emit(text.slice(last).replace(/\x1b/g, ""));
  return fragment;
}

/** The text without any escape sequences (for searching and copying). */
export function stripAnsi(text) {
  return text.replace(ESCAPE, "").replace(/\x1b/g, "");
}

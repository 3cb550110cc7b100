// A small, safe markdown subset for experiment notes: headings, paragraphs, lists, quotes,
// fenced code, rules; inline code, bold, italic and links. It never parses HTML: every piece
// of text becomes a text node (so `<script>` is shown as written), and a link keeps its target
// only for http(s) and mailto URLs and in-app/relative paths (`javascript:`, `data:` and other
// schemes become plain text).

import { h } from "./dom.js";

const SAFE_SCHEMES = new Set(["http", "https", "mailto"]);

/** A link target that may be followed (http(s), mailto or a relative path), else null. */
export function safeUrl(url) {
  // browsers ignore whitespace and control characters inside a scheme (java\tscript:)
  const trimmed = String(url).replace(/[\u0000-\u0020\u007f]/g, "");
  const scheme = /^([^:/?#]+):/.exec(trimmed);
  if (!trimmed || (scheme && !SAFE_SCHEMES.has(scheme[1].toLowerCase()))) return null;
  return trimmed;
}

const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(.+?)\*\*|__(.+?)__|\*(?!\s)(.+?)\*|(?<![\w])_(?!\s)(.+?)_(?![\w])|\[([^\]]+)\]\(\s*<?([^)\s>]*)>?\s*\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

/** Inline markdown of one block's text as nodes. */
export function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    const m = INLINE.exec(rest);
    if (!m) {
      out.push(rest);
      break;
    }
    if (m.index) out.push(rest.slice(0, m.index));
    const [whole, , code, strong1, strong2, em1, em2, label, href, bare] = m;
    if (code !== undefined) out.push(h("code", {}, code.trim() || code));
    else if (strong1 ?? strong2) out.push(h("strong", {}, inline(strong1 ?? strong2)));
    else if (em1 ?? em2) out.push(h("em", {}, inline(em1 ?? em2)));
    else if (label !== undefined) {
      const url = safeUrl(href);
      out.push(url ? h("a", { href: url, rel: "noopener noreferrer nofollow", target: url.startsWith("#") ? null : "_blank" }, inline(label))
        : whole);
    } else out.push(h("a", { href: bare, rel: "noopener noreferrer nofollow", target: "_blank" }, bare));
    rest = rest.slice(m.index + whole.length);
  }
  return out;
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const FENCE = /^\s*(```|~~~)/;

/**
 * Render markdown text into a fragment of safe nodes.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  const until = (stop) => {
    const taken = [];
    while (i < lines.length && !stop(lines[i])) taken.push(lines[i++]);
    return taken;
  };
  const blockStart = (line) => !line.trim() || HEADING.test(line) || FENCE.test(line) || RULE.test(line) ||
    BULLET.test(line) || NUMBERED.test(line) || /^\s*>/.test(line);
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
    } else if (FENCE.test(line)) {
      const fence = FENCE.exec(line)[1];
      i++;
      const code = until((l) => l.trim().startsWith(fence));
      i++;
      blocks.push(h("pre", { tabindex: 0 }, h("code", {}, code.join("\n"))));
    } else if (HEADING.test(line)) {
      const [, hashes, title] = HEADING.exec(line);
      // notes sit under the page's h2: their headings start at h3
      blocks.push(h(`h${Math.min(6, hashes.length + 2)}`, {}, inline(title)));
      i++;
    } else if (RULE.test(line)) {
      blocks.push(h("hr"));
      i++;
    } else if (/^\s*>/.test(line)) {
      const quoted = until((l) => !/^\s*>/.test(l)).map((l) => l.replace(/^\s*>\s?/, ""));
      blocks.push(h("blockquote", {}, renderMarkdown(quoted.join("\n"))));
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = !BULLET.test(line);
      const pattern = ordered ? NUMBERED : BULLET;
      const items = [];
      while (i < lines.length && pattern.test(lines[i])) {
        const m = pattern.exec(lines[i++]);
        const more = until((l) => blockStart(l)).map((l) => l.trim());
        items.push(h("li", {}, inline([ordered ? m[2] : m[1], ...more].join(" "))));
      }
      const start = ordered ? Number(NUMBERED.exec(line)[1]) : 1;
      blocks.push(h(ordered ? "ol" : "ul", { start: ordered && start !== 1 ? start : null }, items));
    } else {
      const paragraph = [lines[i++], ...until(blockStart)];
      blocks.push(h("p", {}, inline(paragraph.map((l) => l.trim()).join("\n"))));
    }
  }
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks);
  return fragment;
}

// The live log panel: long-polls the logs endpoint (EventSource cannot send the Authorization
// header) and appends lines coloured by level, with ANSI colours rendered as spans. The reader
// can search, keep only some levels, download the whole log, enlarge the panel to the window
// (Esc or the button again to leave) and drag its height.

import { api, experimentPath, isTransient, query } from "./api.js";
import { renderAnsi, stripAnsi } from "./ansi.js";
import { downloadText } from "./csv.js";
import { h, sleep } from "./dom.js";
import { formatClock, formatTime } from "./format.js";
import { isFinal } from "./status.js";

const BATCH = 5000;
const MAX_LINES = 20000;
const WAIT_SECONDS = 10;
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/** What a terminal would show of a message: the text after its last carriage return. */
export function visibleText(message) {
  const text = String(message ?? "").replace(/\r+$/, "");
  const cut = text.lastIndexOf("\r");
  return cut >= 0 ? text.slice(cut + 1) : text;
}

function levelOf(line) {
  const level = String(line.level || "INFO").toUpperCase();
  return LEVELS.includes(level) ? level : "INFO";
}

function lineElement(line) {
  const level = levelOf(line);
  const message = visibleText(line.message);
  return h("div", {
    class: `log-line level-${level.toLowerCase()}`,
    dataset: { seq: line.seq, level, text: stripAnsi(`${line.stream} ${level} ${message}`).toLowerCase() },
  },
  h("span", { class: "log-time" }, formatClock(line.time)),
  h("span", { class: "log-stream" }, line.stream),
  h("span", { class: "log-level" }, level),
  h("span", { class: "log-message" }, renderAnsi(message)));
}

/** A log line as plain text, the way the CLI prints it. */
export function lineText(line) {
  return `${formatTime(line.time)} ${line.stream} ${levelOf(line)} ${stripAnsi(String(line.message ?? ""))}`;
}

/**
 * The lines that explain a failure: from the last "Traceback" among the final lines to the
 * end, else the final `count` lines.
 */
export function failureTail(lines, count = 20) {
  const recent = lines.slice(-200);
  const start = recent.map((l) => String(l.message ?? "")).findLastIndex((m) => m.includes("Traceback"));
  return start >= 0 ? recent.slice(start).slice(-80) : recent.slice(-count);
}

/** The log panel of one experiment; call `start()` to follow it until `ctx.signal` aborts. */
export class LogPanel {
  constructor(ctx, projectId, experimentId, { name = `experiment-${experimentId}` } = {}) {
    this.ctx = ctx;
    this.path = experimentPath(projectId, experimentId, "/logs");
    this.name = name;
    this.lastSeq = 0;
    this.count = 0;
    this.tail = []; // the latest lines as records (failure summaries read them)
    this.caughtUp = new Promise((resolve) => { this.markCaughtUp = resolve; });
    this.follow = h("input", {
      type: "checkbox", checked: true, name: "follow",
      onchange: () => { if (this.follow.checked) this.scrollToEnd(); },
    });
    this.state = h("span", { class: "muted log-state" }, "");
    this.search = h("input", {
      type: "search", name: "log-search", class: "log-search", placeholder: "Search logs",
      "aria-label": "Search the log lines", oninput: () => this.applyFilter(),
    });
    this.level = h("select", { name: "log-level", "aria-label": "Lowest level shown", onchange: () => this.applyFilter() },
      h("option", { value: "DEBUG" }, "All levels"),
      LEVELS.slice(1).map((level) => h("option", { value: level }, `${level[0]}${level.slice(1).toLowerCase()} and above`)));
    this.matches = h("span", { class: "muted log-matches", role: "status" });
    this.lines = h("div", {
      class: "log-lines", role: "log", "aria-live": "polite", tabindex: 0, "aria-label": "Log lines",
      // Scrolling up to read pauses following; scrolling back to the end resumes it.
      onscroll: () => {
        const atEnd = this.lines.scrollHeight - this.lines.scrollTop - this.lines.clientHeight < 4;
        this.follow.checked = atEnd;
      },
    });
    this.fullscreenButton = h("button", {
      type: "button", class: "log-fullscreen", "aria-pressed": "false", onclick: () => this.toggleFullscreen(),
    }, "Full screen");
    this.element = h("section", { class: "logs" },
      h("div", { class: "section-head logs-head" }, h("h2", {}, "Logs"),
        h("label", { class: "follow" }, this.follow, " Follow"), this.state),
      h("div", { class: "toolbar log-toolbar" }, this.search, this.level, this.matches,
        h("button", { type: "button", class: "log-download", onclick: () => this.download() }, "Download"),
        this.fullscreenButton),
      this.lines);
    this.onKey = (event) => { if (event.key === "Escape") this.toggleFullscreen(false); };
    ctx.signal.addEventListener("abort", () => document.removeEventListener("keydown", this.onKey));
  }

  scrollToEnd() {
    this.lines.scrollTop = this.lines.scrollHeight;
  }

  append(lines) {
    if (!lines.length) return;
    const fragment = document.createDocumentFragment();
    for (const line of lines) fragment.append(lineElement(line));
    this.lines.querySelector(".log-empty")?.remove();
    this.lines.append(fragment);
    this.count += lines.length;
    this.tail.push(...lines);
    if (this.tail.length > 400) this.tail.splice(0, this.tail.length - 200);
    while (this.count > MAX_LINES) {
      this.lines.firstElementChild.remove();
      this.count -= 1;
    }
    if (this.search.value || this.level.value !== "DEBUG") this.applyFilter();
    if (this.follow.checked) this.scrollToEnd();
  }

  /** Show only the lines at or above the chosen level that contain the search text. */
  applyFilter() {
    const needle = this.search.value.trim().toLowerCase();
    const lowest = LEVELS.indexOf(this.level.value);
    let shown = 0;
    for (const el of this.lines.querySelectorAll(".log-line")) {
      const visible = LEVELS.indexOf(el.dataset.level) >= lowest && (!needle || el.dataset.text.includes(needle));
      el.hidden = !visible;
      shown += visible ? 1 : 0;
    }
    const filtered = needle || lowest > 0;
    this.matches.textContent = filtered ? `${shown} of ${this.count} lines` : "";
    this.lines.classList.toggle("filtered", Boolean(filtered));
  }

  toggleFullscreen(on = !this.element.classList.contains("fullscreen")) {
    this.element.classList.toggle("fullscreen", on);
    this.fullscreenButton.setAttribute("aria-pressed", String(on));
    this.fullscreenButton.textContent = on ? "Exit full screen" : "Full screen";
    if (on) document.addEventListener("keydown", this.onKey);
    else document.removeEventListener("keydown", this.onKey);
    if (this.follow.checked) this.scrollToEnd();
  }

  /** Download every line of the log (read again from the start, not only what is shown). */
  async download() {
    const out = [];
    let after = 0;
    for (;;) {
      const page = await api(this.path + query({ after_seq: after, limit: 100000 }), { signal: this.ctx.signal });
      const lines = page.lines || [];
      out.push(...lines.map(lineText));
      if (!lines.length || lines.length < 100000) break;
      after = lines[lines.length - 1].seq;
    }
    downloadText(`${this.name}.log`, out.join("\n") + (out.length ? "\n" : ""), "text/plain");
  }

  async poll(wait) {
    const started = performance.now();
    const page = await api(this.path + query({ after_seq: this.lastSeq, limit: BATCH, wait }),
      { signal: this.ctx.signal });
    const lines = page.lines || [];
    this.append(lines);
    if (lines.length) this.lastSeq = lines[lines.length - 1].seq;
    if (page.last_seq !== undefined && page.last_seq !== null && !lines.length) {
      this.lastSeq = Math.max(this.lastSeq, page.last_seq);
    }
    return { status: page.status, full: lines.length >= BATCH, elapsed: performance.now() - started };
  }

  /** Read everything so far, then follow new lines while the experiment is live. */
  async start() {
    let wait = 0;
    while (!this.ctx.signal.aborted) {
      let page;
      try {
        page = await this.poll(wait);
      } catch (error) {
        if (!isTransient(error)) throw error;
        this.state.textContent = `connection problem (${error.message}); retrying…`;
        await sleep(2000, this.ctx.signal);
        continue;
      }
      const { status, full, elapsed } = page;
      const live = status && !isFinal(status);
      this.state.textContent = live ? "following live output" : "";
      if (!this.count && !this.lines.querySelector(".log-empty")) {
        this.lines.append(h("p", { class: "muted log-empty" }, "No log lines yet."));
      }
      if (full) continue;
      this.markCaughtUp(this.tail);
      if (!live) break;
      wait = WAIT_SECONDS;
      // A server that answers at once (no long-poll) is polled every second.
      if (elapsed < 900) await sleep(1000 - elapsed, this.ctx.signal);
    }
  }
}

// The live log panel: long-polls the logs endpoint (EventSource cannot send the Authorization
// header) and appends lines coloured by level, with ANSI colours rendered as spans.

import { api, experimentPath, isTransient, query } from "./api.js";
import { renderAnsi } from "./ansi.js";
import { h, sleep } from "./dom.js";
import { formatClock } from "./format.js";

const BATCH = 5000;
const MAX_LINES = 20000;
const WAIT_SECONDS = 10;
const FINAL = new Set(["done", "failed", "stopped"]);

function lineElement(line) {
  const level = String(line.level || "INFO").toUpperCase();
  return h("div", { class: `log-line level-${level.toLowerCase()}`, dataset: { seq: line.seq } },
    h("span", { class: "log-time" }, formatClock(line.time)),
    h("span", { class: "log-stream" }, line.stream),
    h("span", { class: "log-level" }, level),
    h("span", { class: "log-message" }, renderAnsi(String(line.message ?? ""))));
}

/** The log panel of one experiment; call `start()` to follow it until `ctx.signal` aborts. */
export class LogPanel {
  constructor(ctx, projectId, experimentId) {
    this.ctx = ctx;
    this.path = experimentPath(projectId, experimentId, "/logs");
    this.lastSeq = 0;
    this.count = 0;
    this.follow = h("input", {
      type: "checkbox", checked: true, name: "follow",
      onchange: () => { if (this.follow.checked) this.lines.scrollTop = this.lines.scrollHeight; },
    });
    this.state = h("span", { class: "muted log-state" }, "");
    this.lines = h("div", {
      class: "log-lines", role: "log", "aria-live": "polite",
      // Scrolling up to read pauses following; scrolling back to the end resumes it.
      onscroll: () => {
        const atEnd = this.lines.scrollHeight - this.lines.scrollTop - this.lines.clientHeight < 4;
        this.follow.checked = atEnd;
      },
    });
    this.element = h("section", { class: "logs" },
      h("div", { class: "section-head" }, h("h2", {}, "Logs"),
        h("label", { class: "follow" }, this.follow, " Follow"), this.state),
      this.lines);
  }

  append(lines) {
    if (!lines.length) return;
    const fragment = document.createDocumentFragment();
    for (const line of lines) fragment.append(lineElement(line));
    this.lines.querySelector(".log-empty")?.remove();
    this.lines.append(fragment);
    this.count += lines.length;
    while (this.count > MAX_LINES) {
      this.lines.firstElementChild.remove();
      this.count -= 1;
    }
    if (this.follow.checked) this.lines.scrollTop = this.lines.scrollHeight;
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
      const live = status && !FINAL.has(status);
      this.state.textContent = live ? "following live output" : "";
      if (!this.count && !this.lines.querySelector(".log-empty")) {
        this.lines.append(h("p", { class: "muted log-empty" }, "No log lines yet."));
      }
      if (full) continue;
      if (!live) break;
      wait = WAIT_SECONDS;
      // A server that answers at once (no long-poll) is polled every second.
      if (elapsed < 900) await sleep(1000 - elapsed, this.ctx.signal);
    }
  }
}

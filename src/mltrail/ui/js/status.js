// Run status and time: the status pill (every status the server may send, `crashed` included,
// styled like `failed`), which statuses are final, and durations that keep counting on the
// client for runs still going (the server's duration of a running run is its last update).

import { h } from "./dom.js";
import { formatDuration } from "./format.js";

export const STATUSES = ["queued", "running", "done", "failed", "stopped", "crashed"];
const FINAL = new Set(["done", "failed", "stopped", "crashed"]);
const FAILED = new Set(["failed", "crashed"]);
const DESCRIPTIONS = {
  queued: "waiting for an agent to run it",
  running: "running now",
  done: "finished",
  failed: "ended with an error",
  stopped: "stopped on request",
  crashed: "stopped sending heartbeats: the process died or lost its connection",
};

/** Whether a run with this status can still change (log lines, points, status). */
export function isFinal(status) {
  return FINAL.has(status);
}

/** Whether the status means the run ended badly (failed or crashed). */
export function isFailure(status) {
  return FAILED.has(status);
}

/** The status pill; unknown statuses (from a newer server) are shown as they come. */
export function statusPill(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return h("span", {
    class: `status status-${known}${isFailure(status) ? " status-failure" : ""}`,
    title: DESCRIPTIONS[status] ?? `status ${status}`,
  }, status);
}

/**
 * Seconds the run has taken: ended - started once it ended; for a running run, now - started
 * by the client's clock (never negative, whatever the clocks' skew); for a crashed run, until
 * its last heartbeat (the last moment it was known alive).
 */
export function runDuration(experiment, now = Date.now() / 1000) {
  const { started_at: started, ended_at: ended, status, last_heartbeat: beat } = experiment;
  if (started === null || started === undefined) return null;
  if (ended !== null && ended !== undefined) return Math.max(0, ended - started);
  if (status === "running") return Math.max(0, now - started);
  if (status === "crashed" && beat !== null && beat !== undefined) return Math.max(0, beat - started);
  return experiment.duration ?? null;
}

/** A duration element that a ticker keeps counting while the run is live. */
export function durationText(experiment) {
  const live = experiment.status === "running" && !experiment.ended_at && experiment.started_at;
  return h("span", {
    class: "duration",
    dataset: live ? { liveSince: experiment.started_at } : {},
  }, formatDuration(runDuration(experiment)));
}

/**
 * Every second, refresh the text of the `[data-live-since]` elements under `root` until the
 * signal aborts (one timer per view, not one per row).
 */
export function tickDurations(root, signal) {
  const timer = setInterval(() => {
    const now = Date.now() / 1000;
    for (const el of root.querySelectorAll("[data-live-since]")) {
      el.textContent = formatDuration(Math.max(0, now - Number(el.dataset.liveSince)));
    }
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(timer));
}

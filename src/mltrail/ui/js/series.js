// Reading stored series for charts: many lines in one request, each downsampled on the server
// to the chart's width and, for a zoomed chart, confined to the visible iterations; at most
// CONCURRENCY requests at once for the whole page.

import { api } from "./api.js";

const CONCURRENCY = 6;

/** Whether a series key is a system metric (`system/cpu_percent`, from the SDK's sampler). */
export function isSystemKey(key) {
  return String(key).startsWith("system/");
}

/** A function that runs at most `n` of the tasks given to it at once, in order. */
export function limiter(n) {
  let running = 0;
  const waiting = [];
  const next = () => {
    if (running >= n || !waiting.length) return;
    running += 1;
    const { task, resolve, reject } = waiting.shift();
    task().then(resolve, reject).finally(() => {
      running -= 1;
      next();
    });
  };
  return (task) => new Promise((resolve, reject) => {
    waiting.push({ task, resolve, reject });
    next();
  });
}

const queue = limiter(CONCURRENCY);
const BATCH_MAX = 5000; // series per POST /series/read (the server's limit)

/** What a line that could not be read draws: nothing (the others still draw). */
function emptySeries(line, error) {
  return { key: line.key, phase: line.phase, total: 0, downsampled: false, iterations: [], epochs: [], values: [], times: [], error };
}

/**
 * Read every line (same options for all), in the order given, with one request
 * (`POST /series/read`) per 5,000 lines: a view's charts cost one round trip, not one per line.
 * A line the server cannot find comes back empty, with its `error`.
 * @param {Array<{project: number, experiment: number, key: string, phase: string}>} lines
 * @param {{maxPoints: number, range?: {min: number, max: number}|null, times?: boolean,
 *          signal?: AbortSignal}} options `range` in iterations; `times` asks for each point's
 *          wall-clock time (the time axes)
 */
export async function readLines(lines, { maxPoints, range = null, times = false, signal }) {
  const body = { max_points: Math.max(2, Math.round(maxPoints)), times };
  if (range) Object.assign(body, { start: Math.floor(range.min), end: Math.ceil(range.max) });
  const parts = [];
  for (let at = 0; at < lines.length; at += BATCH_MAX) parts.push(lines.slice(at, at + BATCH_MAX));
  const answers = await Promise.all(parts.map((part) => queue(() => {
    if (signal?.aborted) return Promise.reject(new DOMException("aborted", "AbortError"));
    const series = part.map((l) => ({ project: l.project, experiment: l.experiment, key: l.key, phase: l.phase }));
    return api("/series/read", { method: "POST", body: { ...body, series }, signal });
  })));
  return answers.flatMap((answer, p) => answer.series.map((s, i) => (s.error ? emptySeries(parts[p][i], s.error) : s)));
}

// Reading stored series for charts: one request per line, at most CONCURRENCY at once for the
// whole page, each downsampled on the server to the chart's width and, for a zoomed chart,
// confined to the visible iterations. A batched multi-series read can replace `readLines`
// without changing its callers.

import { api, experimentPath, query } from "./api.js";

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

/**
 * Read one line's series.
 * @param {{project: number, experiment: number, key: string, phase: string}} line
 * @param {{maxPoints: number, range?: {min: number, max: number}|null, times?: boolean,
 *          signal?: AbortSignal}} options `range` in iterations; `times` asks for each point's
 *          wall-clock time (the time axes)
 */
export function readLine(line, { maxPoints, range = null, times = false, signal }) {
  const params = { key: line.key, phase: line.phase, max_points: Math.max(2, Math.round(maxPoints)) };
  if (range) Object.assign(params, { start: Math.floor(range.min), end: Math.ceil(range.max) });
  if (times) params.times = "true";
  return queue(() => {
    if (signal?.aborted) return Promise.reject(new DOMException("aborted", "AbortError"));
    return api(experimentPath(line.project, line.experiment, "/series/read") + query(params), { signal });
  });
}

/** Read every line (same options for all), in the order given. */
export function readLines(lines, options) {
  return Promise.all(lines.map((line) => readLine(line, options)));
}

// The REST client: one fetch wrapper adding the token, decoding tagged floats and turning
// error bodies into ApiError (401 -> login form, 404 -> not-found page, others -> message).

const TOKEN_KEY = "mltrail.token";

/** An HTTP error from the API, with the server's message and the offending field if any. */
export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/**
 * Turn `{"$float": "NaN"|"Infinity"|"-Infinity"}` back into numbers, recursively.
 * Plain number arrays (series columns) are returned untouched when they hold no objects.
 */
export function decodeFloats(value) {
  if (Array.isArray(value)) {
    let plain = true;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v !== null && typeof v === "object") {
        plain = false;
        break;
      }
    }
    return plain ? value : value.map(decodeFloats);
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$float") return Number(value.$float);
    const out = {};
    for (const key of keys) out[key] = decodeFloats(value[key]);
    return out;
  }
  return value;
}

function errorFromBody(status, body, fallback) {
  const source = body?.error ?? body;
  let message = source?.message ?? source?.detail ?? fallback;
  let field = source?.field ?? null;
  if (Array.isArray(message)) {
    // FastAPI request validation: [{loc: [...], msg: "..."}]
    const first = message[0] || {};
    field = (first.loc || []).filter((p) => p !== "body" && p !== "query").join(".") || field;
    message = first.msg || fallback;
  }
  if (typeof message !== "string") message = JSON.stringify(message);
  return new ApiError(status, message, field);
}

/**
 * Call the API.
 * @param {string} path path under /api/v1, e.g. "/projects"
 * @param {{signal?: AbortSignal, method?: string, body?: any}} [options]
 * @returns {Promise<any>} the decoded JSON body
 * @throws {ApiError} on a non-2xx answer
 */
export async function api(path, { signal, method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch("/api/v1" + path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw errorFromBody(response.status, data, `${response.status} ${response.statusText}`);
  }
  return decodeFloats(data);
}

/** Build a query string, skipping null/undefined values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

/** Path of an experiment resource: experimentPath(3, 5, "/series"). */
export function experimentPath(project, experiment, rest = "") {
  return `/projects/${encodeURIComponent(project)}/experiments/${encodeURIComponent(experiment)}${rest}`;
}

/**
 * Whether a failed live refresh is worth retrying: the network or the server hiccupped
 * (no answer, 5xx, 429), as opposed to a 401/404 that the page must show.
 */
export function isTransient(error) {
  if (error?.name === "AbortError") return false;
  if (error instanceof ApiError) return error.status >= 500 || error.status === 429;
  return error instanceof TypeError; // fetch: network failure
}

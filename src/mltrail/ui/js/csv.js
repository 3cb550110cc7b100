// CSV text (RFC 4180 quoting) and file downloads, for the table and for chart data.

/** One CSV field: numbers in full precision, non-finite spelled out, text quoted when needed. */
export function csvField(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
    return String(value);
  }
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  // a leading = + - @ would run as a formula in a spreadsheet: quote it behind an apostrophe
  const safe = /^[=+\-@\t\r]/.test(text) && Number.isNaN(Number(text)) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/**
 * A CSV document.
 * @param {string[]} header column names
 * @param {Array<Array<any>>} rows values, one array per row
 */
export function toCsv(header, rows) {
  const lines = [header.map(csvField).join(",")];
  for (const row of rows) lines.push(row.map(csvField).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** Save text as a file through a temporary link (no navigation, no server round trip). */
export function downloadText(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file name from free text: letters, digits, dot, dash and underscore only. */
export function safeFilename(text) {
  return String(text).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 100) || "data";
}

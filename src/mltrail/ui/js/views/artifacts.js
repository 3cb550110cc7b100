// The experiment page's Artifacts section: the file tree with sizes, downloads, previews of
// text, JSON, CSV and images; and weights-hash cells that open every experiment/epoch holding
// the same hash with its stored checkpoints. Bytes are fetched with the token (fetch + blob),
// never rendered as a page: images go through <img src=blob:...>, text through textContent.

import { api, experimentPath, getToken } from "../api.js";
import { h, link, setChildren } from "../dom.js";
import { formatTime, formatValue } from "../format.js";

const PREVIEW_BYTES = 256 * 1024;
const PREVIEW_ROWS = 50;
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"]);

/** "1.5 MiB" */
export function formatSize(bytes) {
  let value = Number(bytes);
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (value < 1024 || unit === "TiB") return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return "";
}

/** Artifacts (sorted by path) as nested folders: {folders: Map(name -> node), files: [], size}. */
export function buildTree(artifacts) {
  const root = { folders: new Map(), files: [], size: 0 };
  for (const artifact of artifacts) {
    const parts = artifact.path.split("/");
    let node = root;
    node.size += artifact.size;
    for (const part of parts.slice(0, -1)) {
      if (!node.folders.has(part)) node.folders.set(part, { folders: new Map(), files: [], size: 0 });
      node = node.folders.get(part);
      node.size += artifact.size;
    }
    node.files.push({ name: parts[parts.length - 1], artifact });
  }
  return root;
}

async function fetchBytes(project, experiment, path, signal) {
  const headers = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  const url = "/api/v1" + experimentPath(project, experiment, `/artifacts/${encoded}?redirect=false`);
  const response = await fetch(url, { headers, signal, cache: "no-store" });
  if (!response.ok) throw new Error(`download failed: HTTP ${response.status}`);
  return response;
}

/** Download an artifact as a file named like it (the bytes pass through a blob URL). */
export async function downloadArtifact(artifact) {
  const response = await fetchBytes(artifact.project, artifact.experiment, artifact.path);
  const url = URL.createObjectURL(await response.blob());
  const anchor = h("a", { href: url, download: artifact.path.split("/").pop() });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function headText(response) {
  const reader = response.body.getReader();
  const parts = [];
  let held = 0;
  while (held < PREVIEW_BYTES) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    held += value.length;
  }
  await reader.cancel();
  const bytes = new Uint8Array(held);
  let offset = 0;
  for (const part of parts) bytes.set(part, offset), (offset += part.length);
  return { text: new TextDecoder().decode(bytes.subarray(0, PREVIEW_BYTES)), cut: held >= PREVIEW_BYTES };
}

function csvTable(text, separator) {
  const rows = text.split(/\r?\n/).filter((line) => line.length).slice(0, PREVIEW_ROWS + 1);
  const cells = rows.map((line) => line.split(separator));
  return h("table", { class: "data csv-preview" },
    h("thead", {}, h("tr", {}, (cells[0] || []).map((c) => h("th", {}, c)))),
    h("tbody", {}, cells.slice(1).map((row) => h("tr", {}, row.map((c) => h("td", {}, c))))));
}

/** The preview element of an artifact: an image, a CSV table, pretty JSON or text. */
export async function preview(artifact, signal) {
  const response = await fetchBytes(artifact.project, artifact.experiment, artifact.path, signal);
  const type = artifact.media_type;
  if (IMAGE_TYPES.has(type)) {
    const url = URL.createObjectURL(await response.blob());
    return h("img", { class: "artifact-image", src: url, alt: artifact.path });
  }
  const { text, cut } = await headText(response);
  const note = cut ? h("p", { class: "muted" }, `First ${formatSize(PREVIEW_BYTES)} shown.`) : null;
  if (type === "text/csv" || type === "text/tab-separated-values") {
    return h("div", {}, csvTable(text, type === "text/csv" ? "," : "\t"), note);
  }
  if (type === "application/json" && !cut) {
    try {
      return h("pre", { class: "artifact-text" }, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      // not valid JSON after all: shown as text below
    }
  }
  return h("div", {}, h("pre", { class: "artifact-text" }, text), note);
}

/** Whether the UI can preview this artifact. */
export function previewable(artifact) {
  const type = artifact.media_type;
  return IMAGE_TYPES.has(type) || type.startsWith("text/") || type === "application/json"
    || type === "application/jsonl";
}

/** A weights hash that opens where else it was recorded and its stored checkpoints. */
export function weightsHashCell(hash, signal) {
  const details = h("details", { class: "weights-links" });
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  details.append(h("summary", {}, h("code", {}, hash)), body);
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.loaded) return;
    details.dataset.loaded = "1";
    const [links, checkpoints] = await Promise.all([
      api(`/weights/${hash}`, { signal }), api(`/weights/${hash}/checkpoints`, { signal })]);
    setChildren(body,
      h("ul", { class: "holders" }, links.map((w) => h("li", {},
        link(`/projects/${w.project}/experiments/${w.experiment}`,
          `project ${w.project} · experiment ${w.experiment}`),
        ` · epoch ${formatValue(w.epoch)} · iteration ${formatValue(w.iteration)}`))),
      checkpoints.length
        ? h("ul", { class: "checkpoints" }, checkpoints.map((a) => h("li", {},
          h("button", { type: "button", class: "download", onclick: () => downloadArtifact(a) },
            `Download ${a.path}`), ` (${formatSize(a.size)}, experiment ${a.experiment})`)))
        : h("p", { class: "muted" }, "No checkpoint file stored for this hash."));
  });
  return details;
}

/** The Artifacts section of an experiment page. */
export class ArtifactsPanel {
  constructor(ctx, project, experiment) {
    this.ctx = ctx;
    this.project = project;
    this.experimentId = experiment;
    this.tree = h("div", { class: "artifact-tree" });
    this.previewBox = h("div", { class: "artifact-preview", hidden: true });
    this.element = h("section", { class: "artifacts" }, h("h2", {}, "Artifacts"), this.tree, this.previewBox);
    this.signature = "";
  }

  async load() {
    const artifacts = await api(experimentPath(this.project, this.experimentId, "/artifacts"),
      { signal: this.ctx.signal });
    const signature = artifacts.map((a) => `${a.path}:${a.sha256}`).join("|");
    if (signature === this.signature) return; // unchanged: keep open folders and previews
    this.signature = signature;
    if (!artifacts.length) {
      setChildren(this.tree, h("p", { class: "muted" }, "No artifacts stored."));
      return;
    }
    setChildren(this.tree, this.renderFolder(buildTree(artifacts), true));
  }

  renderFolder(node, top = false) {
    const folders = [...node.folders.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, child]) =>
      h("li", { class: "folder" }, h("details", { open: top },
        h("summary", {}, `${name}/ `, h("span", { class: "muted size" }, formatSize(child.size))),
        this.renderFolder(child))));
    const files = node.files.map(({ name, artifact }) => this.renderFile(name, artifact));
    return h("ul", { class: top ? "tree top" : "tree" }, folders, files);
  }

  renderFile(name, artifact) {
    return h("li", { class: "file", dataset: { path: artifact.path } },
      h("span", { class: "name" }, name), " ",
      h("span", { class: "muted size" }, formatSize(artifact.size)),
      artifact.epoch !== null ? h("span", { class: "muted" }, ` · epoch ${artifact.epoch}`) : null,
      artifact.weights_hash ? weightsHashCell(artifact.weights_hash, this.ctx.signal) : null,
      previewable(artifact)
        ? h("button", { type: "button", class: "preview", onclick: () => this.showPreview(artifact) }, "Preview")
        : null,
      h("button", { type: "button", class: "download", onclick: () => downloadArtifact(artifact) }, "Download"),
      h("span", { class: "muted created" }, ` ${formatTime(artifact.created_at)}`));
  }

  async showPreview(artifact) {
    this.previewBox.hidden = false;
    setChildren(this.previewBox, h("h3", {}, artifact.path), h("p", { class: "muted" }, "Loading…"));
    try {
      setChildren(this.previewBox, h("h3", {}, artifact.path), await preview(artifact, this.ctx.signal));
    } catch (error) {
      setChildren(this.previewBox, h("h3", {}, artifact.path), h("p", { class: "warning" }, error.message));
    }
  }
}

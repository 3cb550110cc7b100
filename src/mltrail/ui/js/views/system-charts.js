// System metrics (CPU, memory, disk, network, GPU: series whose key starts with `system/`, as
// the SDK's sampler stores them) live in their own collapsed section, apart from the training
// charts; their series are read only once the reader opens it.

import { h } from "../dom.js";
import { isSystemKey } from "../series.js";
import { SeriesCharts } from "./series-charts.js";

/** Split chart specs into [training, system] by the key of their lines. */
export function splitSystemSpecs(specs) {
  const system = specs.filter((spec) => spec.lines.length && isSystemKey(spec.lines[0].key));
  return [specs.filter((spec) => !system.includes(spec)), system];
}

/** A collapsed section of charts that reads its series when opened (and then on each sync). */
export class SystemCharts {
  constructor(ctx, settings, options = {}) {
    this.ctx = ctx;
    this.charts = new SeriesCharts(ctx, settings, options);
    this.specs = [];
    this.count = h("span", { class: "muted system-count" });
    this.element = h("details", {
      class: "system-metrics", hidden: true,
      ontoggle: () => { if (this.element.open) this.charts.sync(this.specs).catch((error) => ctx.fail(error)); },
    }, h("summary", {}, h("h2", {}, "System metrics"), " ", this.count), this.charts.element);
  }

  /** The system charts to show; read (and redrawn) only while the section is open. */
  async sync(specs) {
    this.specs = specs;
    this.element.hidden = !specs.length;
    this.count.textContent = `(${specs.length} chart${specs.length === 1 ? "" : "s"})`;
    if (this.element.open) await this.charts.sync(specs);
  }
}

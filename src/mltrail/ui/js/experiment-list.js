// A project's experiments as the table reads them. Today's API lists them in id order a page
// at a time, so everything is read in the background and kept; `refresh()` then re-reads only
// what can have changed: new experiments and the window of those still live. A server that
// pages, sorts and filters can replace this class without changing the table.

import { api, query } from "./api.js";
import { isFinal } from "./status.js";

const FIRST_FETCH = 200;
const FETCH_SIZE = 1000;
const MAX_SINGLE = 20; // live runs read one by one per refresh, at most

export class ExperimentList {
  constructor(projectId, signal) {
    this.path = `/projects/${projectId}/experiments`;
    this.signal = signal;
    this.items = [];
    this.total = 0;
  }

  async page(offset, limit) {
    return api(this.path + query({ offset, limit }), { signal: this.signal });
  }

  /** The first rows, quickly (a small page). */
  async loadFirst() {
    const first = await this.page(0, FIRST_FETCH);
    this.items = [...first.items];
    this.total = first.total;
  }

  /** The rest, page by page; `onPage()` after each. */
  async loadRest(onPage) {
    while (this.items.length < this.total && !this.signal.aborted) {
      const page = await this.page(this.items.length, FETCH_SIZE);
      if (!page.items.length) break;
      this.items.push(...page.items);
      this.total = page.total;
      onPage();
    }
  }

  /**
   * Re-read new experiments and every experiment from the first one still live to the end.
   * @returns {Promise<boolean>} whether anything changed
   */
  async refresh() {
    const firstLive = this.items.findIndex((e) => !isFinal(e.status));
    let offset = firstLive >= 0 ? firstLive : this.items.length;
    let changed = false;
    if (this.items.length - offset > 2 * FETCH_SIZE) {
      // an old run still live far back: read the live runs one by one, then only the tail
      changed = await this.refreshEach(this.items.filter((e) => !isFinal(e.status)).slice(0, MAX_SINGLE));
      offset = Math.max(0, this.items.length - FETCH_SIZE);
    }
    for (;;) {
      const page = await this.page(offset, FETCH_SIZE);
      changed = this.merge(offset, page.items) || changed;
      if (page.total !== this.total) changed = true;
      this.total = page.total;
      offset += page.items.length;
      if (!page.items.length || offset >= page.total) break;
    }
    return changed;
  }

  async refreshEach(live) {
    const fresh = await Promise.all(live.map((e) =>
      api(`${this.path}/${e.experiment_id}`, { signal: this.signal })));
    let changed = false;
    for (const item of fresh) {
      const at = this.items.findIndex((e) => e.experiment_id === item.experiment_id);
      if (JSON.stringify(this.items[at]) === JSON.stringify(item)) continue;
      this.items[at] = item;
      changed = true;
    }
    return changed;
  }

  merge(offset, items) {
    let changed = false;
    items.forEach((item, i) => {
      const old = this.items[offset + i];
      if (old && old.experiment_id === item.experiment_id && JSON.stringify(old) === JSON.stringify(item)) return;
      changed = true;
      if (old && old.experiment_id === item.experiment_id) this.items[offset + i] = item;
      else {
        const at = this.items.findIndex((e) => e.experiment_id === item.experiment_id);
        if (at >= 0) this.items[at] = item;
        else this.items.push(item);
      }
    });
    return changed;
  }
}

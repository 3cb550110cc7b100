// Jobs and agents: the queue of jobs (every state, filterable by state, queue and project, with
// a warning on queued jobs no live agent serves) and the agents that run them, refreshed every
// few seconds; and a job's own page (its command, where it ran, how it ended, and its output as
// the log panel of the experiment it runs, with a stop button). Everything is read from the
// existing REST routes: GET /jobs, GET /jobs/{id}, GET /agents, POST .../experiments/{e}/stop.

import { api, experimentPath, isTransient, query } from "../api.js";
import { replaceQuery } from "../app.js";
import { h, keyValueTable, link, setChildren, sleep } from "../dom.js";
import { formatTime, formatValue } from "../format.js";
import { LogPanel } from "../logs.js";
import { durationText, isFinal, statusPill, tickDurations } from "../status.js";

const REFRESH_MS = 3000;
const LIST_LIMIT = 500;
const JOB_STATES = ["queued", "running", "done", "failed", "stopped"];

/** A job's run as the duration helpers read an experiment: from its claim to its end. */
function asRun(job) {
  return { status: job.status, started_at: job.claimed_at, ended_at: job.ended_at };
}

function commandText(job) {
  return job.command.map((arg) => (/[\s"'$`\\]/.test(arg) ? JSON.stringify(arg) : arg)).join(" ");
}

function experimentLink(job) {
  return link(`/projects/${job.project_id}/experiments/${job.experiment_id}`, `#${job.experiment_id}`);
}

function unserved(job) {
  return job.status === "queued" && job.queue_served === false;
}

function queueCell(job) {
  return h("td", { class: "queue" }, job.queue, unserved(job)
    ? h("span", { class: "badge warning-badge unserved", title: "No live agent serves this queue: start `mltrail agent --queue " + job.queue + "`" }, "no agent")
    : null);
}

/** Render the jobs page (`#/jobs?project=&status=&queue=`). */
export async function renderJobs(ctx) {
  const view = new JobsView(ctx);
  ctx.setTitle("Jobs");
  await view.load();
  view.mount();
  view.followLive().catch((error) => ctx.fail(error));
}

class JobsView {
  constructor(ctx) {
    this.ctx = ctx;
    const project = Number(ctx.params.get("project"));
    this.project = project > 0 ? project : null;
    const status = ctx.params.get("status");
    this.status = JOB_STATES.includes(status) ? status : "";
    this.queue = ctx.params.get("queue") || "";
    this.jobs = [];
    this.agents = [];
    this.projects = new Map();
    this.jobsTable = h("table", { class: "data jobs" });
    this.agentsTable = h("table", { class: "data agents" });
    this.summary = h("p", { class: "muted jobs-summary", role: "status" });
    this.liveState = h("p", { class: "warning live-state", role: "status" });
  }

  async load() {
    const signal = this.ctx.signal;
    const params = { project_id: this.project, status: this.status || null, queue: this.queue || null, limit: LIST_LIMIT };
    const [jobs, agents, projects] = await Promise.all([
      api("/jobs" + query(params), { signal }),
      api("/agents", { signal }),
      this.projects.size ? null : api("/projects", { signal }),
    ]);
    this.jobs = jobs;
    this.agents = agents;
    if (projects) this.projects = new Map(projects.map((p) => [p.id, p.display_name]));
  }

  mount() {
    const stateSelect = h("select", { name: "job-status", "aria-label": "Job state", onchange: () => this.setFilter({ status: stateSelect.value }) },
      h("option", { value: "" }, "Every state"),
      JOB_STATES.map((s) => h("option", { value: s, selected: s === this.status }, s)));
    this.queueSelect = h("select", { name: "job-queue", "aria-label": "Queue", onchange: () => this.setFilter({ queue: this.queueSelect.value }) });
    const projectName = this.project ? this.projects.get(this.project) ?? `project ${this.project}` : null;
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumbs" }, link("/", "Projects"), " / ",
        this.project ? [link(`/projects/${this.project}`, projectName), " / "] : null, "Jobs"),
      h("div", { class: "page-head" }, h("h1", {}, this.project ? `Jobs of ${projectName}` : "Jobs"),
        this.project ? link("/jobs", "All projects") : null),
      h("div", { class: "toolbar" }, stateSelect, this.queueSelect, this.summary),
      this.liveState,
      h("section", { class: "jobs-section" }, h("h2", {}, "Queue"),
        h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Jobs" }, this.jobsTable)),
      h("section", { class: "agents-section" }, h("h2", {}, "Agents"),
        h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Agents" }, this.agentsTable)),
    );
    tickDurations(this.jobsTable, this.ctx.signal);
    this.render();
  }

  setFilter(change) {
    Object.assign(this, change);
    replaceQuery({ project: this.project, status: this.status, queue: this.queue });
    this.refresh().catch((error) => this.ctx.fail(error));
  }

  async refresh() {
    await this.load();
    this.render();
  }

  async followLive() {
    while (!this.ctx.signal.aborted) {
      await sleep(REFRESH_MS, this.ctx.signal);
      if (this.ctx.signal.aborted) return;
      try {
        await this.refresh();
        this.liveState.textContent = "";
      } catch (error) {
        if (!isTransient(error)) throw error;
        this.liveState.textContent = `Connection problem (${error.message}); retrying…`;
      }
    }
  }

  render() {
    const queues = new Set([...this.jobs.map((j) => j.queue), ...this.agents.flatMap((a) => a.queues)]);
    if (this.queue) queues.add(this.queue);
    this.queueSelect.replaceChildren(h("option", { value: "" }, "Every queue"),
      [...queues].sort().map((q) => h("option", { value: q, selected: q === this.queue }, q)));
    const counts = JOB_STATES.map((s) => [s, this.jobs.filter((j) => j.status === s).length]).filter(([, n]) => n);
    const waiting = this.jobs.filter(unserved).length;
    this.summary.textContent = (counts.map(([s, n]) => `${n} ${s}`).join(" · ") || "no jobs") +
      (waiting ? ` · ${waiting} waiting for an agent` : "");
    this.renderJobs();
    this.renderAgents();
  }

  agentName(id) {
    return this.agents.find((a) => a.agent_id === id)?.name ?? id;
  }

  renderJobs() {
    const head = ["Job", "State", "Project", "Experiment", "Queue", "Command", "Agent", "Attempts",
      "Queued", "Duration", "Exit code", "Error"];
    const rows = this.jobs.map((job) => h("tr", { dataset: { jobId: job.job_id }, class: unserved(job) ? "unserved-row" : null },
      h("td", { class: "num" }, link(`/jobs/${job.job_id}`, `#${job.job_id}`)),
      h("td", {}, statusPill(job.status)),
      h("td", { class: "text" }, link(`/projects/${job.project_id}`, this.projects.get(job.project_id) ?? String(job.project_id))),
      h("td", { class: "num" }, experimentLink(job)),
      queueCell(job),
      h("td", { class: "text command", title: commandText(job) }, h("code", {}, commandText(job))),
      h("td", { class: "text" }, job.agent_id ? this.agentName(job.agent_id) : ""),
      h("td", { class: "num" }, job.attempts),
      h("td", {}, formatTime(job.created_at)),
      h("td", { class: "num", dataset: { column: "duration" } }, job.claimed_at ? durationText(asRun(job)) : ""),
      h("td", { class: "num" }, formatValue(job.exit_code)),
      h("td", { class: "text error", title: job.error || null }, job.error || "")));
    const empty = rows.length ? null : h("tr", {}, h("td", { colspan: head.length, class: "muted" },
      "No jobs. Queue one with `mltrail run -p PROJECT -- python train.py`."));
    this.jobsTable.replaceChildren(
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows, empty));
  }

  renderAgents() {
    const head = ["Name", "State", "Queues", "Current job", "Last seen", "Registered", "Agent id"];
    const rows = this.agents.map((a) => h("tr", { dataset: { agentId: a.agent_id } },
      h("td", { class: "text name" }, a.name),
      h("td", {}, h("span", { class: `status ${a.alive ? "status-running" : "status-unknown"} agent-state` }, a.alive ? "online" : "offline")),
      h("td", { class: "text" }, a.queues.join(", ")),
      h("td", { class: "num" }, a.job_id ? link(`/jobs/${a.job_id}`, `#${a.job_id}`) : ""),
      h("td", {}, formatTime(a.last_seen_at)),
      h("td", {}, formatTime(a.registered_at)),
      h("td", {}, h("code", {}, a.agent_id))));
    const empty = rows.length ? null : h("tr", {}, h("td", { colspan: head.length, class: "muted" },
      "No agents yet. Start one with `mltrail agent --queue default` on a machine that should run jobs."));
    this.agentsTable.replaceChildren(
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows, empty));
  }
}

/** Render one job's page (`#/jobs/{id}`) and follow it until it ends. */
export async function renderJob(ctx, jobId) {
  const view = new JobView(ctx, await readJob(jobId, ctx.signal));
  view.mount();
  view.logs.start().catch((error) => ctx.fail(error));
  view.followLive().catch((error) => ctx.fail(error));
}

/**
 * A job with `queue_served` filled in as GET /jobs does (GET /jobs/{id} leaves it out) and
 * `stop_requested` from its experiment (a queued job asked to stop stays queued until claimed).
 */
async function readJob(jobId, signal) {
  const [job, agents] = await Promise.all([api(`/jobs/${jobId}`, { signal }), api("/agents", { signal })]);
  const run = await api(experimentPath(job.project_id, job.experiment_id), { signal });
  const served = agents.some((a) => a.alive && a.queues.includes(job.queue));
  return { ...job, queue_served: job.queue_served ?? served, stop_requested: run.stop_requested };
}

class JobView {
  constructor(ctx, job) {
    this.ctx = ctx;
    this.job = job;
    this.header = h("div", { class: "job-head" });
    this.details = h("div", { class: "tables" });
    this.logs = new LogPanel(ctx, job.project_id, job.experiment_id, { name: `job-${job.job_id}` });
  }

  mount() {
    const job = this.job;
    this.ctx.setTitle(`Job ${job.job_id}`);
    setChildren(this.ctx.main,
      h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumbs" }, link("/", "Projects"), " / ",
        link(`/jobs?project=${job.project_id}`, "Jobs"), " / ", `Job #${job.job_id}`),
      this.header, this.details, this.logs.element);
    tickDurations(this.header, this.ctx.signal);
    this.render();
  }

  async followLive() {
    while (!isFinal(this.job.status) && !this.ctx.signal.aborted) {
      await sleep(REFRESH_MS, this.ctx.signal);
      if (this.ctx.signal.aborted) return;
      try {
        this.job = await readJob(this.job.job_id, this.ctx.signal);
        this.render();
      } catch (error) {
        if (!isTransient(error)) throw error;
      }
    }
  }

  async stop() {
    const path = experimentPath(this.job.project_id, this.job.experiment_id, "/stop");
    try {
      await api(path, { method: "POST", signal: this.ctx.signal });
    } catch (error) {
      if (error.status !== 409) throw error; // it ended meanwhile: the refresh shows how
    }
    this.job = await readJob(this.job.job_id, this.ctx.signal);
    this.render();
  }

  render() {
    const job = this.job;
    const live = !isFinal(job.status);
    const facts = [
      ["Experiment", experimentLink(job)],
      ["Queue", job.queue],
      ["Queued", formatTime(job.created_at)],
      ["Started", formatTime(job.claimed_at)],
      ["Ended", formatTime(job.ended_at)],
      ["Duration", job.claimed_at ? durationText(asRun(job)) : ""],
      ["Exit code", formatValue(job.exit_code)],
    ].filter(([, v]) => v !== "" && v !== null);
    setChildren(this.header,
      h("div", { class: "title-row" },
        h("h1", {}, `Job #${job.job_id} `, statusPill(job.status)),
        h("button", {
          type: "button", class: "job-stop", disabled: !live || job.stop_requested,
          title: live ? "Ask the agent to stop the job (SIGTERM, then SIGKILL)" : "The job has ended",
          onclick: () => this.stop().catch((error) => this.ctx.fail(error)),
        }, job.stop_requested && live ? "Stop requested" : "Stop")),
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v)))),
      h("pre", { class: "job-command", tabindex: 0 }, commandText(job)),
      unserved(job) ? h("p", { class: "warning unserved" }, `No live agent serves queue "${job.queue}": start one with `,
        h("code", {}, `mltrail agent --queue ${job.queue}`), ".") : null,
      job.stop_requested && live ? h("p", { class: "warning stop-requested" }, job.status === "queued"
        ? "A stop was requested: no agent will run this job." : "A stop was requested.") : null,
      job.error ? h("p", { class: "form-error job-error" }, job.error) : null);
    const agent = job.agent_id ? [["Agent", job.agent_id], ["Attempts", job.attempts], ["Retries allowed", job.max_retries]]
      : [["Attempts", job.attempts], ["Retries allowed", job.max_retries]];
    this.details.replaceChildren(
      h("section", { class: "table-card job-run" }, h("h2", {}, "Run"), keyValueTable(agent, { format: formatValue })),
      h("section", { class: "table-card job-source" }, h("h2", {}, "Source"),
        keyValueTable(Object.entries(job.source || {}), { format: formatValue })),
      h("section", { class: "table-card job-env" }, h("h2", {}, "Environment variables"),
        keyValueTable(Object.entries(job.env || {}).sort(([a], [b]) => a.localeCompare(b)), { emptyText: "None set by the job." })));
  }
}

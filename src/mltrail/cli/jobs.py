"""``mltrail run``, ``mltrail agent``, ``mltrail agents list``, ``mltrail jobs list``.

Parse, call ``api.jobs`` / ``api.agents``, render. The agent itself lives in
:mod:`mltrail.agent`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

from mltrail.api.snapshots import SOURCES
from mltrail.cli.common import (
    PROJECT,
    echo_json,
    echo_table,
    get_api,
    get_settings,
    output_format_option,
)
from mltrail.core.jobs import MAX_WAIT_SECONDS


class Seconds(click.ParamType):
    """A finite number of seconds from ``low`` to ``high`` (FloatRange lets nan through: it
    compares false both ways, and reached socket.settimeout as a ValueError traceback)."""

    name = "seconds"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (math.isfinite(seconds) and self.low <= seconds <= self.high):
            self.fail(
                f"must be from {self.low:g} to {self.high:g} seconds, got {value}", param, ctx
            )
        return seconds


# --- mltrail run -------------------------------------------------------------------------------
@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option(
    "--queue", "-q", default="default", show_default=True, help="Queue agents claim from."
)
@click.option("--display-name", help="The experiment's display name.")
@click.option("--description", default="", help="The experiment's description.")
@click.option(
    "--env", "env", multiple=True, metavar="K=V", help="Environment variable (repeatable)."
)
@click.option(
    "--retries",
    type=int,
    default=0,
    show_default=True,
    help="Re-queue this many times when the agent dies mid-run.",
)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="auto",
    show_default=True,
    help="Working directory for the job: git commit (clean repo pushed to a remote), "
    "tarball of the current directory, or none. auto picks git, else tarball.",
)
@click.option("--attach", is_flag=True, help="Follow the experiment's logs until it ends.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    project: int,
    queue: str,
    display_name: str | None,
    description: str,
    env: tuple[str, ...],
    retries: int,
    source: str,
    attach: bool,
    command: tuple[str, ...],
) -> None:
    """Queue COMMAND as a new experiment of PROJECT; prints the experiment id.

    Example: mltrail run -p 1 --queue gpu -- python train.py --lr 0.1
    """
    job = get_api().jobs.submit(
        project,
        command,
        queue=queue,
        display_name=display_name,
        description=description,
        env=list(env),
        retries=retries,
        source=source,
    )
    click.echo(job.experiment_id)
    click.echo(
        f"queued job {job.job_id}: project {job.project_id}, experiment "
        f"{job.experiment_id}, queue {job.queue!r}",
        err=True,
    )
    if not get_api().jobs.queue_served(job.queue):
        click.echo(
            f"warning: no live agent serves queue {job.queue!r}; the job stays queued "
            "until one does (mltrail agent --queue ...)",
            err=True,
        )
    if attach:
        _attach(job.project_id, job.experiment_id)


def _attach(project_id: int, experiment_id: int) -> None:
    api = get_api()
    api.experiments.logs(project_id, experiment_id, disable_colors=not sys.stdout.isatty())
    status = api.experiments.get(project_id, experiment_id)["status"]
    click.echo(f"experiment {experiment_id}: {status}", err=True)
    if status != "done":
        raise click.exceptions.Exit(1)


# --- mltrail agent -----------------------------------------------------------------------------
@click.command()
@click.option(
    "--queue", "-q", "queues", multiple=True, help="Queue to serve (repeatable) [default: default]."
)
@click.option("--max-jobs", type=click.IntRange(min=1), help="Exit after this many jobs.")
@click.option(
    "--lease-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a job stays ours without a heartbeat.",
)
@click.option(
    "--grace-period",
    type=Seconds(0, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL when a job is stopped.",
)
@click.option(
    "--poll",
    type=Seconds(0, MAX_WAIT_SECONDS),
    default=20.0,
    show_default=True,
    help="Longest wait for a job in one long-poll.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where job directories are made [default: $MLTRAIL_HOME/agent; with a job user "
    "$TMPDIR/mltrail-jobs-<agent uid>].",
)
@click.option(
    "--job-user",
    default=None,
    help="OS user jobs run as; only root can name another user than its own "
    "[default: nobody when the agent runs as root, else the agent's user].",
)
@click.option("--keep-workdirs", is_flag=True, help="Leave job directories on disk.")
@click.option(
    "--name", default=None, help="Name shown in `mltrail agents list` [default: host name]."
)
@click.option(
    "--project",
    "-p",
    "projects",
    type=PROJECT,
    multiple=True,
    help="Also run every job of this project (repeatable; you must be a member) "
    "[default: only jobs you queued].",
)
@click.option(
    "--max-tarball-bytes",
    type=click.IntRange(min=1),
    default=1024**3,
    show_default=True,
    help="Refuse a job's tarball that expands to more bytes.",
)
@click.option(
    "--max-tarball-files",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Refuse a job's tarball holding more files.",
)
def agent(
    queues: tuple[str, ...],
    max_jobs: int | None,
    lease_timeout: float,
    grace_period: float,
    poll: float,
    work_dir: Path | None,
    keep_workdirs: bool,
    name: str | None,
    projects: tuple[int, ...],
    max_tarball_bytes: int,
    max_tarball_files: int,
    job_user: str | None,
) -> None:
    """Run queued jobs: long-poll, claim, run in a fresh directory, stream logs, report.

    Uses MLTRAIL_URL and MLTRAIL_TOKEN (or the embedded database); SIGTERM or Ctrl-C stops
    the current job and exits. It runs the jobs you queued, and every job of the projects
    given with --project; each job gets a token of its own, never yours. Run as root, it runs
    jobs as --job-user, who cannot read your token file.
    """
    from mltrail.agent import job_user as job_users
    from mltrail.agent.processes import contain_agent
    from mltrail.agent.runner import AgentOptions, AgentRunner
    from mltrail.agent.workdir import TarLimits
    from mltrail.core import jobs as jobs_core

    settings = get_settings()
    names = jobs_core.queue_names(list(queues))
    jobs_core.lease_seconds(lease_timeout)
    user = _job_user(job_user, embedded=settings.embedded)
    work_root = work_dir or job_users.default_work_root(settings, user)
    options = AgentOptions(
        queues=names,
        max_jobs=max_jobs,
        lease_seconds=lease_timeout,
        poll_seconds=poll,
        grace_seconds=grace_period,
        work_root=work_root,
        keep_workdirs=keep_workdirs,
        name=name or socket.gethostname(),
        projects=jobs_core.project_ids(list(projects)),
        tar_limits=TarLimits(max_tarball_bytes, max_tarball_files),
        job_user=user,
    )
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s mltrail agent: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if user is not None:
        try:
            job_users.open_work_root(work_root, user)
        except job_users.JobUserError as exc:
            raise click.ClickException(str(exc)) from None
    contain_agent()  # jobs cannot read its token from /proc; their orphans stay its own
    exiting: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: exiting.append(signum))
    runner = AgentRunner(
        get_api(),
        options,
        settings=settings,
        child_env=os.environ,
        should_exit=lambda: bool(exiting),
    )
    count = runner.run()
    click.echo(f"agent {runner.agent_id} ran {count} job(s)", err=True)


def _job_user(name: str | None, *, embedded: bool) -> Any:
    """The JobUser of ``--job-user`` (None: the agent's own); a one-line error when unusable."""
    from mltrail.agent import job_user as job_users

    if embedded and name is None:
        return None  # no token to protect: the jobs write the agent's own database
    try:
        user = job_users.job_user_for(name)
    except job_users.JobUserError as exc:
        raise click.ClickException(str(exc)) from None
    if embedded and user is not None:
        raise click.ClickException(
            "--job-user needs a server (MLTRAIL_URL): an embedded agent's jobs write its own "
            "database"
        )
    return user


# --- listings --------------------------------------------------------------------------------
@click.group()
def agents() -> None:
    """Agents that run jobs."""


@agents.command("list")
@output_format_option
def list_agents(output_format: str) -> None:
    """Every registered agent: queues, whether it is alive, its current job."""
    from mltrail.core import codec

    found = get_api().agents.list()
    if output_format == "json":
        echo_json([codec.agent_to_wire(a) for a in found])
        return
    now = time.time()
    echo_table(
        ["agent", "name", "queues", "alive", "last seen", "job"],
        (
            [
                a.agent_id,
                a.name,
                ", ".join(a.queues),
                "yes" if a.alive else "no",
                _ago(now - a.last_seen_at),
                a.job_id,
            ]
            for a in found
        ),
    )


@click.group()
def jobs() -> None:
    """Queued, running and finished jobs."""


@jobs.command("list")
@click.option("--project", "-p", type=PROJECT, help="Only this project's jobs (id or name).")
@click.option("--queue", "-q", help="Only this queue.")
@click.option("--status", type=click.Choice(["queued", "running", "done", "failed", "stopped"]))
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@output_format_option
def list_jobs(
    project: int | None, queue: str | None, status: str | None, limit: int, output_format: str
) -> None:
    """Jobs, newest first; says when a queued job's queue has no live agent."""
    from mltrail.core import codec

    found = get_api().jobs.list(project=project, queue=queue, status=status, limit=limit)
    if output_format == "json":
        echo_json([codec.job_to_wire(j) for j in found])
        return
    echo_table(
        [
            "job",
            "project",
            "experiment",
            "queue",
            "status",
            "attempts",
            "agent",
            "exit code",
            "command",
            "note",
        ],
        (
            [
                j.job_id,
                j.project_id,
                j.experiment_id,
                j.queue,
                j.status.value,
                j.attempts,
                j.agent_id,
                j.exit_code,
                " ".join(j.command),
                _note(j),
            ]
            for j in found
        ),
    )
    unserved = sorted({j.queue for j in found if _unserved(j)})
    if unserved:
        click.echo(
            f"warning: no live agent serves queue(s) {', '.join(unserved)}: "
            "their jobs stay queued until one does",
            err=True,
        )


def _unserved(job: Any) -> bool:
    return job.status.value == "queued" and job.queue_served is False


def _note(job: Any) -> str:
    if _unserved(job):
        return f"no agent serves queue {job.queue!r}"
    return job.error or ""


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"

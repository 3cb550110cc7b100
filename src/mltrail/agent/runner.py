"""The agent: long-polls for jobs, runs each in a fresh directory, streams its output, reports.

It never crashes on a bad job: whatever goes wrong while preparing or running a job ends that
job as ``failed`` with a message in the experiment's logs, and the agent takes the next one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mltrail.agent.job_user import JobUser, exposure_warning, hand_over, job_user_environ
from mltrail.agent.lease import LeaseKeeper
from mltrail.agent.logship import LogShipper, start_pump
from mltrail.agent.processes import (
    MARK_VARIABLE,
    job_mark,
    kill_marked,
    kill_orphans,
    reap_adopted,
    shim_command,
    signal_tree,
)
from mltrail.agent.system import job_sampler
from mltrail.agent.workdir import TarLimits, WorkdirError, prepare_workdir, remove_workdir
from mltrail.api import Api
from mltrail.config import Settings
from mltrail.core.errors import ConflictError, MltrailError, NotFoundError, TransportError
from mltrail.core.jobs import (
    DEFAULT_LEASE_SECONDS,
    HeartbeatReply,
    Job,
    lease_seconds,
    queue_names,
)
from mltrail.core.types import Status

log = logging.getLogger("mltrail.agent")

AGENT_STREAM = "agent"
PUMP_JOIN_SECONDS = 5.0
SHIM_MARGIN_SECONDS = 5.0  # past the grace period, the shim itself is SIGKILLed
SUPERVISE_SECONDS = 0.2


@dataclass(frozen=True)
class AgentOptions:
    """How an agent behaves.

    Attributes:
        queues: the queues it serves.
        max_jobs: exit after this many jobs (``None``: run forever).
        lease_seconds: how long a claimed job stays ours without a heartbeat.
        poll_seconds: how long one long-poll waits for a job.
        grace_seconds: between SIGTERM and SIGKILL when stopping a job.
        work_root: where job directories are created (and removed afterwards).
        keep_workdirs: leave job directories on disk (debugging).
        flush_seconds: the longest an output line waits before it is sent.
        projects: projects whose every job it runs (its owner must be a member of each);
            without them it runs only the jobs its owner queued.
        tar_limits: how far a job's tarball may expand (bytes, files).
        job_user: the unprivileged user jobs run as (the agent must be root, and the work
            root reachable by it: :func:`~mltrail.agent.job_user.open_work_root`); None: the
            agent's own user.
    """

    queues: tuple[str, ...] = ("default",)
    max_jobs: int | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_seconds: float = 20.0
    grace_seconds: float = 10.0
    work_root: Path | None = None
    keep_workdirs: bool = False
    flush_seconds: float = 0.5
    name: str = field(default_factory=socket.gethostname)
    projects: tuple[int, ...] = ()
    tar_limits: TarLimits = field(default_factory=TarLimits)
    job_user: JobUser | None = None


class AgentRunner:
    """Runs jobs it claims through ``api.jobs`` and ``api.agents``.

    Args:
        api: the Api on the embedded store or a server.
        options: behaviour, see :class:`AgentOptions`.
        settings: the agent's own settings; commands get its url and home (through
            :meth:`Settings.to_env`), never its token or its other MLTRAIL_* variables.
        child_env: the environment commands inherit, before the job's own and MLTRAIL_* ones.
        should_exit: polled between jobs; lets a signal handler end the agent cleanly.
    """

    def __init__(
        self,
        api: Api,
        options: AgentOptions,
        *,
        settings: Settings,
        child_env: Mapping[str, str],
        should_exit: Callable[[], bool] = lambda: False,
    ) -> None:
        self.api = api
        self.options = options
        self.queues = queue_names(list(options.queues))
        self.lease = lease_seconds(options.lease_seconds)
        self.agent_id = _agent_id_for(options.name)
        self._settings = settings
        self._child_env = dict(child_env)
        self._should_exit = should_exit
        self.jobs_run = 0

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Register, then claim and run jobs until ``max_jobs`` or ``should_exit``.

        Returns:
            How many jobs ran.

        Raises:
            AuthenticationError / PermissionDeniedError: the token is refused (at registration).
        """
        killed = kill_orphans(self._work_root)
        if killed:
            log.warning(
                "killed %d process(es) left by an earlier agent in %s", killed, self._work_root
            )
        self._register()
        log.info("agent %s serving queue(s) %s", self.agent_id, ", ".join(self.queues))
        self._say_who_runs_jobs()
        try:
            while not self._done():
                job = self._claim()
                if job is not None:
                    self.run_job(job)
                    self.jobs_run += 1
        finally:
            self._deregister()
        return self.jobs_run

    def _say_who_runs_jobs(self) -> None:
        user = self.options.job_user
        if user is not None:
            log.info("jobs run as %s (uid %d) in %s", user.name, user.uid, self._work_root)
        elif self._settings.url:  # an embedded agent has no token its jobs could take
            log.warning("warning: %s", exposure_warning(self._settings))

    @property
    def _work_root(self) -> Path:
        return self.options.work_root or Path(tempfile.gettempdir()) / "mltrail-agent"

    def _done(self) -> bool:
        limit = self.options.max_jobs
        return self._should_exit() or (limit is not None and self.jobs_run >= limit)

    def _claim(self) -> Job | None:
        wait = min(self.options.poll_seconds, max(self.lease / 2, 0.5))
        try:
            return self.api.jobs.claim(
                self.agent_id, self.queues, lease_seconds=self.lease, wait_seconds=wait
            )
        except TransportError as exc:
            log.warning("cannot reach the server: %s; retrying", exc)
            time.sleep(min(2.0, self.lease / 2))
        except NotFoundError as exc:
            if exc.field != "agent_id":
                raise
            log.warning("the server forgot this agent; registering again")
            self._register()
        return None

    def _register(self) -> None:
        self.api.agents.register(
            self.agent_id,
            name=self.options.name,
            queues=self.queues,
            lease_seconds=self.lease,
            projects=self.options.projects,
        )

    def _deregister(self) -> None:
        try:
            self.api.agents.deregister(self.agent_id)
        except MltrailError as exc:
            log.warning("could not deregister: %s", exc)

    # --- one job ---------------------------------------------------------------------------------
    def run_job(self, job: Job) -> Status:
        """Run one claimed job to its end and report it. Never raises for a bad job."""
        log.info(
            "job %d: %s (project %d, experiment %d)",
            job.job_id,
            " ".join(job.command),
            job.project_id,
            job.experiment_id,
        )
        shipper = LogShipper(
            lambda batch: self.api.jobs.append_output(job, batch),
            f"agent:{self.agent_id}:job:{job.job_id}:{job.attempts}",
            flush_seconds=self.options.flush_seconds,
        )
        with LeaseKeeper(lambda: self._heartbeat(job), max(self.lease / 3, 0.2)) as lease:
            outcome = self._run_claimed(job, shipper, lease)
            self._report(job, outcome)
        return outcome.status

    def _run_claimed(self, job: Job, shipper: LogShipper, lease: LeaseKeeper) -> _Outcome:
        workdir: Path | None = None
        outcome = _Outcome(Status.FAILED)
        try:
            workdir = prepare_workdir(
                self._work_root,
                job.job_id,
                job.source,
                lambda: self.api.jobs.snapshot(job.job_id),
                self.options.tar_limits,
                local_git=self.options.job_user is None,
            )
            if self.options.job_user is not None:
                hand_over(workdir, self.options.job_user)
            outcome = self._execute(job, workdir, shipper, lease)
        except (WorkdirError, MltrailError) as exc:
            outcome = _Outcome(
                Status.FAILED, error=f"could not prepare the working directory: {exc}"
            )
        except Exception as exc:  # the agent outlives any job
            log.exception("job %d crashed the runner", job.job_id)
            outcome = _Outcome(Status.FAILED, error=f"agent error: {type(exc).__name__}: {exc}")
        finally:
            if outcome.error:
                shipper.put(AGENT_STREAM, outcome.error, "ERROR")
            elif outcome.status is Status.STOPPED:
                shipper.put(AGENT_STREAM, "stopped on request", "WARNING")
            shipper.close()
            if workdir is not None and not self.options.keep_workdirs:
                remove_workdir(workdir)
        return outcome

    def _execute(
        self, job: Job, workdir: Path, shipper: LogShipper, lease: LeaseKeeper
    ) -> _Outcome:
        mark = job_mark(self._work_root, job.job_id)
        status_read, status_write = os.pipe()
        try:
            proc = subprocess.Popen(
                shim_command(
                    list(job.command), status_write, self.options.grace_seconds, self._as_user
                ),
                cwd=workdir,
                env={**self.job_env(job, workdir), MARK_VARIABLE: mark},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_write,),
                start_new_session=True,  # its own process group, so stop reaches its children
            )
        finally:
            os.close(status_write)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            start_pump(proc.stdout, "stdout", shipper),
            start_pump(proc.stderr, "stderr", shipper),
        ]
        sampler = job_sampler(self.api.store, self._settings, job, proc.pid)
        try:
            outcome = self._supervise(proc, lease)
        finally:
            if sampler is not None:
                sampler.close()
        outcome = _start_failure(status_read, self.options.job_user) or outcome
        if (
            outcome.status is not Status.STOPPED
            and not outcome.lost
            and self._stop_asked(job, lease)
        ):
            # the SDK inside saw the stop first and ended the process itself (often with 0)
            outcome = _Outcome(Status.STOPPED, exit_code=outcome.exit_code)
        _kill_group(proc.pid, signal.SIGKILL)  # leftovers holding the pipes open
        kill_marked(mark)  # and any that escaped the shim's tree (its shim was killed)
        reap_adopted()
        for pump in pumps:
            pump.join(PUMP_JOIN_SECONDS)
        return outcome

    @property
    def _as_user(self) -> tuple[int, int] | None:
        user = self.options.job_user
        return None if user is None else (user.uid, user.gid)

    def _supervise(self, proc: subprocess.Popen[bytes], lease: LeaseKeeper) -> _Outcome:
        """Wait for the process; stop it when asked, when the lease is lost or on shutdown."""
        while True:
            try:
                return _exit_outcome(proc.wait(timeout=SUPERVISE_SECONDS))
            except subprocess.TimeoutExpired:
                pass
            if lease.lease_lost.is_set():
                self._terminate(proc)
                return _Outcome(
                    Status.FAILED, error="lease lost: the job was taken away", lost=True
                )
            if lease.stop_requested.is_set():
                return _Outcome(Status.STOPPED, exit_code=self._terminate(proc))
            if self._should_exit():
                self._terminate(proc)
                return _Outcome(Status.FAILED, error="the agent was shut down while the job ran")

    def _stop_asked(self, job: Job, lease: LeaseKeeper) -> bool:
        if lease.stop_requested.is_set():
            return True
        try:
            return self._heartbeat(job).stop_requested
        except MltrailError:
            return False

    def _heartbeat(self, job: Job) -> HeartbeatReply:
        return self.api.agents.heartbeat(self.agent_id, job.job_id, lease_seconds=self.lease)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM the job's process group (the shim passes it to every descendant and
        SIGKILLs them after the grace period), then SIGKILL the group if the shim hangs."""
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=self.options.grace_seconds + SHIM_MARGIN_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            signal_tree(proc.pid, signal.SIGKILL)
            return proc.wait()

    def _report(self, job: Job, outcome: _Outcome) -> None:
        if outcome.lost:
            log.warning("job %d: lease lost, not reporting", job.job_id)
            return
        for attempt in range(20):
            try:
                self.api.jobs.finish(
                    job.job_id,
                    self.agent_id,
                    status=outcome.status,
                    exit_code=outcome.exit_code,
                    error=outcome.error,
                )
                log.info(
                    "job %d: %s (exit code %s)", job.job_id, outcome.status.value, outcome.exit_code
                )
                return
            except ConflictError as exc:
                log.warning("job %d: %s", job.job_id, exc)
                return
            except TransportError as exc:
                log.warning(
                    "reporting job %d failed (attempt %d): %s", job.job_id, attempt + 1, exc
                )
                time.sleep(min(2.0 * (attempt + 1), 10.0))

    def job_env(self, job: Job, workdir: Path | None = None) -> dict[str, str]:
        """The command's environment: the agent's, the job's, then the MLTRAIL_* ones, which
        attach the command's ``mltrail.start()`` to the job's experiment (the agent captures
        the output itself, so the SDK does not). The token is the job's own, minted at the
        claim (limited to its project and experiment, ending with the job); the agent's token
        is never in it. In server mode ``MLTRAIL_HOME`` is the job's own, inside ``workdir``:
        the agent's home may hold its token (``mltrail login`` writes ``config.toml``). A job
        run as a job user also gets ``HOME``, ``USER``, ``LOGNAME`` and ``TMPDIR`` of its own."""
        home = self._settings.home
        if self._settings.url and workdir is not None:
            home = workdir / ".mltrail"
        job_settings = Settings(
            url=self._settings.url,
            token=job.token if self._settings.url else None,
            home=home,
            project=str(job.project_id),
            experiment=job.experiment_id,
            job=job.job_id,
            capture_console=False,
            system_metrics=False,  # the agent samples the job's machine and processes itself
        )
        env = job_settings.child_environ(self._child_env)
        if self.options.job_user is not None and workdir is not None:
            env.update(job_user_environ(workdir, self.options.job_user))
        env.update(job.env)  # job variables never start with MLTRAIL_ (checked on submission)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


@dataclass(frozen=True)
class _Outcome:
    status: Status
    exit_code: int | None = None
    error: str | None = None
    lost: bool = False


def _start_failure(status_read: int, user: JobUser | None) -> _Outcome | None:
    """What the shim wrote when the command could not start (``CODE message``), else None."""
    with os.fdopen(status_read, "rb") as status:
        text = status.read(10_000).decode(errors="replace")
    code, _, message = text.partition(" ")
    if not code.isdigit():
        return None
    if user is not None:
        message += f" (jobs run as {user.name}: the agent's --job-user must be able to run it)"
    return _Outcome(Status.FAILED, exit_code=int(code), error=message)


def _exit_outcome(code: int) -> _Outcome:
    if code == 0:
        return _Outcome(Status.DONE, exit_code=0)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return _Outcome(Status.FAILED, exit_code=code, error=f"killed by signal {name}")
    return _Outcome(Status.FAILED, exit_code=code, error=f"exited with code {code}")


def _agent_id_for(name: str) -> str:
    """A unique agent id that starts with a tidy form of the agent's name."""
    tidy = re.sub(r"[^A-Za-z0-9_.:\-]+", "-", name).strip("-_.:")[:60]
    return f"{tidy or 'agent'}-{uuid.uuid4().hex[:12]}"


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)

"""Choosing the job user and its work root: refused in one line when unusable."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from jobs_helpers import cli_env, run_cli

from mltrail.agent.job_user import (
    DEFAULT_JOB_USER,
    JobUser,
    JobUserError,
    job_user_for,
    open_work_root,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root changes a job's user")


def test_an_unknown_job_user_is_refused_naming_it() -> None:
    with pytest.raises(JobUserError, match="no such user 'no-such-user-mltrail'"):
        job_user_for("no-such-user-mltrail")


def test_the_agents_own_user_means_no_change() -> None:
    assert job_user_for(str(os.geteuid())) is None
    if os.geteuid() != 0:
        assert job_user_for(None) is None
        with pytest.raises(JobUserError, match="only an agent running as root"):
            job_user_for("root")


@needs_root
def test_a_root_agent_runs_jobs_as_nobody_by_default_and_as_root_only_when_told() -> None:
    nobody = pwd.getpwnam(DEFAULT_JOB_USER)
    assert job_user_for(None) == JobUser(nobody.pw_name, nobody.pw_uid, nobody.pw_gid)
    assert job_user_for("root") is None


@needs_root
def test_a_work_root_the_job_user_cannot_reach_or_a_link_is_refused(tmp_path: Path) -> None:
    user = JobUser(DEFAULT_JOB_USER, *pwd.getpwnam(DEFAULT_JOB_USER)[2:4])
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(JobUserError, match=f"cannot enter {closed};"):
        open_work_root(closed / "work", user)
    link = tmp_path / "link"
    link.symlink_to(closed)
    with pytest.raises(JobUserError, match="not a link"):
        open_work_root(link, user)
    reachable = Path(tempfile.mkdtemp(prefix="mltrail-test-jobs-"))  # pytest's are closed
    try:
        open_work_root(reachable, user)  # made 0700; opened to pass through
        assert stat.S_IMODE(reachable.stat().st_mode) == 0o711
    finally:
        shutil.rmtree(reachable)


def test_the_cli_refuses_an_unknown_job_user_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path, "http://127.0.0.1:9", "mlt_never_sent")  # refused before any call
    result = run_cli(["agent", "--job-user", "no-such-user-mltrail"], env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --job-user: no such user 'no-such-user-mltrail'"
    ]

"""``mltrail experiments export`` and ``mltrail login`` in real subprocesses."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import uuid

import pandas as pd
import pytest

from mltrail.config import Settings


def _mltrail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mltrail", *args], env=env, capture_output=True, timeout=120
    )


@pytest.fixture(params=["embedded", "server"])
def env(request: pytest.FixtureRequest, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    if request.param == "server":
        server = request.getfixturevalue("shared_server")
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token}
    return env


def _record(env: dict[str, str], project: str) -> None:
    code = (
        "import sys, mltrail\n"
        "with mltrail.start(sys.argv[1]) as exp:\n"
        "    for i in range(1000):\n"
        "        exp.log({'loss': 1 / (i + 1)})\n"
    )
    run = {**env, "MLTRAIL_SYSTEM_METRICS": "off", "MLTRAIL_CAPTURE": "off"}  # exact counts
    subprocess.run([sys.executable, "-c", code, project], env=run, check=True, timeout=120)


def test_export_streams_every_point_in_each_format(env, tmp_path):
    project = f"export-{uuid.uuid4().hex[:8]}"
    _record(env, project)
    _record(env, project)
    csv = _mltrail(env, "experiments", "export", "-p", project)
    assert csv.returncode == 0, csv.stderr
    frame = pd.read_csv(io.BytesIO(csv.stdout))
    assert len(frame) == 2000 and frame.groupby("experiment").size().tolist() == [1000, 1000]
    target = tmp_path / "one.parquet"
    done = _mltrail(
        env,
        "experiments",
        "export",
        "-p",
        project,
        "-e",
        "2",
        "--format",
        "parquet",
        "-o",
        str(target),
    )
    assert done.returncode == 0 and b"exported 1000 points" in done.stderr
    assert pd.read_parquet(target)["value"].tolist() == frame["value"].tolist()[1000:]
    jsonl = _mltrail(env, "experiments", "export", "-p", project, "--format", "jsonl")
    assert len(jsonl.stdout.splitlines()) == 2000


def test_export_refuses_bad_input_in_one_line(env, tmp_path):
    parquet = _mltrail(env, "experiments", "export", "-p", "1", "--format", "parquet")
    assert parquet.returncode != 0 and b"--output is required for parquet" in parquet.stderr
    missing = _mltrail(
        env,
        "experiments",
        "export",
        "-p",
        f"nope-{uuid.uuid4().hex}",
        "-o",
        str(tmp_path / "x.csv"),
    )
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.partial").exists()


def test_login_stores_the_token_readable_by_its_owner_only(shared_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    bad = _mltrail(env, "login", shared_server.url, "--token", "mlt_wrong")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "config.toml").exists()
    (tmp_path / "config.toml").write_text("system_metrics_interval = 30\n")
    done = _mltrail(env, "login", shared_server.url, "--token", shared_server.admin_token)
    assert done.returncode == 0, done.stderr
    mode = stat.S_IMODE((tmp_path / "config.toml").stat().st_mode)
    assert mode == 0o600
    settings = Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})
    assert (settings.url, settings.auth_token) == (shared_server.url, shared_server.admin_token)
    assert settings.system_metrics_interval == 30.0  # other settings kept
    listed = _mltrail(env, "projects", "list")  # the next command talks to the server
    assert listed.returncode == 0, listed.stderr

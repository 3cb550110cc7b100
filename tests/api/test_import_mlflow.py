"""``mltrail import mlflow``: a real ``mlflow server`` (SQLite, artifacts proxied), populated
with the real MLflow client, copied by the CLI into an embedded store (SQLite) and into a real
``mltrail server`` on PostgreSQL, then compared field by field and point by point."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from mltrail.api import Api
from mltrail.config import Settings
from mltrail.core.types import Status
from support.servers import ServerProcess, free_port, unique_name

T0 = 1_700_000_000_000  # ms: MLflow's timestamps
STATUS = {"FINISHED": Status.DONE, "FAILED": Status.FAILED, "KILLED": Status.STOPPED}


@dataclass
class MlflowServer:
    url: str
    proc: subprocess.Popen[bytes]
    db: Path


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real MLflow tracking server for the module (start-up costs seconds)."""
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    argv = [str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination", str(home / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLTRAIL_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job runner needed
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # its start-up took over 120 s at a load of 17 on 2 cores
    while True:
        assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "mlflow server did not start"
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield MlflowServer(url, proc, home / "mlflow.db")
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log.close()


@dataclass
class Populated:
    names: list[str]
    runs: dict[str, list[str]]  # experiment name -> run ids in start order
    artifact: bytes


def _metrics(key: str, values: list[float], start: int = 0) -> list[Metric]:
    return [Metric(key, v, T0 + 1000 * i + 7, start + 3 * i) for i, v in enumerate(values)]


def _run(client: MlflowClient, exp: str, n: int, status: str, metrics: list[Metric],
         params: dict[str, str], tags: dict[str, str]) -> str:  # fmt: skip
    run = client.create_run(exp, start_time=T0 + 60_000 * n, tags=tags, run_name=f"run-{n}")
    rid = run.info.run_id
    client.log_batch(rid, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(rid, status, end_time=T0 + 60_000 * n + 45_123)
    return rid


@pytest.fixture(scope="module")
def populated(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Populated:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    tag = uuid.uuid4().hex[:8]
    names = [f"vision-{tag}", f"speech-{tag}"]
    a, b = (client.create_experiment(n) for n in names)
    client.set_experiment_tag(a, "mlflow.note.content", "image models")
    weird = [0.5, math.nan, 0.25, math.inf, -math.inf, 1e-300, -0.0, 0.1 + 0.2]
    first = _run(client, a, 1, "FINISHED",
                 _metrics("loss", weird) + _metrics("acc", [0.1, 0.9], start=1),
                 {"lr": "0.01", "optimizer": "adam", "layers": "[64, 32]"},
                 {"team": "vision", "flag": "", "mlflow.note.content": "baseline",
                  "mlflow.source.git.commit": "abc123"})  # fmt: skip
    second = _run(client, a, 2, "FAILED", _metrics("validation/loss", [2.0, 1.5, 1.25]),
                  {"lr": "0.1"}, {})  # fmt: skip
    third = _run(client, b, 3, "KILLED", _metrics("wer", [0.3] * 500), {}, {"k": "v"})
    folder = tmp_path_factory.mktemp("artifact-src")
    content = os.urandom(3000) + b"end"
    (folder / "weights.bin").write_bytes(content)
    (folder / "notes.txt").write_text("hello")
    client.log_artifact(first, str(folder / "weights.bin"), "model")
    client.log_artifact(first, str(folder / "notes.txt"))
    return Populated(names, {names[0]: [first, second], names[1]: [third]}, content)


def _mltrail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mltrail", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(params=["embedded-sqlite", "server-postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRAIL_", "MLFLOW_"))}
    env["MLTRAIL_HOME"] = str(tmp_path)
    if request.param == "server-postgres":
        server: ServerProcess = request.getfixturevalue("shared_pg_server")
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.make_token(unique_name())}
    return env


def _api(env: dict[str, str]) -> Api:
    return Api.from_settings(
        Settings.from_env({k: v for k, v in env.items() if k.startswith("MLTRAIL_")})
    )


def test_import_copies_everything_exactly_and_once(mlflow_server, populated, target):
    done = _mltrail(target, "import", "mlflow", "--from", mlflow_server.url,
                    "--experiment", populated.names[0], "--experiment", populated.names[1])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 3 runs (0 already imported, skipped) into 2 projects")
    assert "513 metric points, 2 artifacts (3,008 bytes)" in done.stdout
    client = MlflowClient(tracking_uri=mlflow_server.url)
    with _api(target) as api:
        for name, run_ids in populated.runs.items():
            project = api.store.find_project(name)
            assert project is not None
            found = api.store.list_experiments(project.id).items
            assert len(found) == len(run_ids)
            for made, run_id in zip(found, run_ids, strict=True):
                _compare_run(api, client, made, client.get_run(run_id))
        first = api.store.find_project(populated.names[0])
        assert first is not None and first.description == "image models"
        with api.store.open_artifact(first.id, 1, "model/weights.bin") as reader:
            assert b"".join(reader.chunks) == populated.artifact
        again = _mltrail(target, "import", "mlflow", "--from", mlflow_server.url,
                         "--experiment", populated.names[0], "--experiment", populated.names[1])  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("imported 0 runs (3 already imported, skipped)")
        assert api.store.list_experiments(first.id).total == 2
        assert sum(s.count for s in api.store.list_series(first.id, 1)) == 10  # not doubled


def _compare_run(api: Api, client: MlflowClient, made, run) -> None:
    info, data = run.info, run.data
    tags = {k: v for k, v in data.tags.items()
            if k not in ("mlflow.runName", "mlflow.note.content", "mlflow.source.git.commit")}  # fmt: skip
    expected_tags = {f"{k}={v}" if v else k for k, v in tags.items()}
    assert set(made.tags) == expected_tags | {f"mlflow.run_id={info.run_id}"}
    assert made.display_name == info.run_name
    assert made.description == data.tags.get("mlflow.note.content", "")
    assert made.status == STATUS[info.status]
    assert made.started_at == info.start_time / 1000 and made.ended_at == info.end_time / 1000
    assert made.hyperparameters == data.params
    if "mlflow.source.git.commit" in data.tags:
        assert made.source["commit"] == data.tags["mlflow.source.git.commit"]
    series = {(s.phase, s.key) for s in api.store.list_series(made.project_id, made.experiment_id)}
    expected = {
        ("validation", k[11:]) if k.startswith("validation/") else ("train", k)
        for k in data.metrics
    }
    assert series == expected
    for key in data.metrics:
        phase, name = ("validation", key[11:]) if key.startswith("validation/") else ("train", key)
        history = sorted(client.get_metric_history(info.run_id, key), key=lambda m: m.step)
        got = api.store.read_series(made.project_id, made.experiment_id, name, phase, times=True)
        assert got.iterations.tolist() == [m.step for m in history]
        np.testing.assert_array_equal(got.values, np.array([m.value for m in history]))
        assert np.signbit(got.values).tolist() == np.signbit([m.value for m in history]).tolist()
        assert got.times is not None
        assert np.round(got.times * 1000).astype(np.int64).tolist() == [
            m.timestamp for m in history
        ]
    files = {a.path: a.size for a in api.store.list_artifacts(made.project_id, made.experiment_id)}
    expected_files = {}
    for entry in client.list_artifacts(info.run_id):
        for inner in client.list_artifacts(info.run_id, entry.path) if entry.is_dir else [entry]:
            expected_files[inner.path] = inner.file_size
    assert files == expected_files


def test_an_interrupted_import_completes_without_doubling(mlflow_server, populated, tmp_path):
    """An import stopped by an error halfway through a run (its points stored, an artifact
    over the store's limit) is completed by the next one: nothing stored twice."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRAIL_", "MLFLOW_"))}
    env["MLTRAIL_HOME"] = str(tmp_path)
    vision = populated.names[0]
    args = ("import", "mlflow", "--from", mlflow_server.url, "--experiment", vision)
    cut = _mltrail({**env, "MLTRAIL_ARTIFACT_MAX_FILE_BYTES": "1000"}, *args)
    assert cut.returncode != 0 and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
    with _api(env) as api:
        project = api.store.find_project(vision)
        assert project is not None
        (half,) = api.store.list_experiments(project.id).items
        assert not any(t.startswith("mlflow.run_id=") for t in half.tags)  # not marked done
        assert sum(s.count for s in api.store.list_series(project.id, 1)) == 10
    done = _mltrail(env, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 2 runs (0 already imported, skipped) into 1 project")
    assert "3 metric points, 2 artifacts" in done.stdout  # the first run's 10 were there
    client = MlflowClient(tracking_uri=mlflow_server.url)
    with _api(env) as api:
        found = api.store.list_experiments(project.id).items
        for made, run_id in zip(found, populated.runs[vision], strict=True):
            _compare_run(api, client, made, client.get_run(run_id))


def test_import_from_the_mlflow_database(mlflow_server, populated, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRAIL_", "MLFLOW_"))}
    env["MLTRAIL_HOME"] = str(tmp_path)
    speech = populated.names[1]
    uri = f"sqlite:///{mlflow_server.db}"
    done = _mltrail(env, "import", "mlflow", "--from", uri, "--experiment", speech)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 1 runs (0 already imported, skipped) into 1 project")
    assert "500 metric points" in done.stdout
    every = _mltrail(env, "import", "mlflow", "--from", uri)  # vision too; Default is empty
    assert every.returncode == 0, every.stderr
    assert every.stdout.startswith("imported 2 runs (1 already imported, skipped) into 2 projects")
    assert "13 metric points, 0 artifacts" in every.stdout
    assert "artifacts not copied" in every.stderr and "import from its URL" in every.stderr
    with _api(env) as api:
        names = {p.display_name for p in api.store.list_projects()}
        assert names == set(populated.names)  # not MLflow's empty Default


def test_bad_input_is_one_line_and_writes_nothing(mlflow_server, populated, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRAIL_", "MLFLOW_"))}
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [
        (("--from", dead), "cannot reach"),
        (("--from", mlflow_server.url, "--experiment", "no-such-experiment"), "no-such-experiment"),
        (("--from", f"sqlite:///{tmp_path / 'missing.db'}"), "no MLflow database"),
        (("--from", "ftp://example"), "must be an http(s):// URL"),
    ]
    # the cases run at once (a CLI start-up is seconds), each with a home of its own
    homes = [tmp_path / f"home-{n}" for n in range(len(cases))]
    for home in homes:
        home.mkdir()
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "mltrail", "import", "mlflow", *args],
            env={**env, "MLTRAIL_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for (args, _), home in zip(cases, homes, strict=True)
    ]
    for proc, (_, words), home in zip(started, cases, homes, strict=True):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode != 0
        assert len(stderr.strip().splitlines()) == 1 and words in stderr, stderr
        with _api({"MLTRAIL_HOME": str(home)}) as api:
            assert api.store.list_projects() == []


def test_without_mlflow_installed_the_import_names_the_extra(monkeypatch, tmp_path):
    # a fresh `pip install -e .` has no mlflow: `mltrail import mlflow` was a ModuleNotFoundError
    for name in ("mlflow", "mlflow.exceptions", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)  # makes importing them fail
    from mltrail.api.imports.from_mlflow import import_mlflow
    from mltrail.core.errors import ValidationError

    with _api({"MLTRAIL_HOME": str(tmp_path)}) as api, pytest.raises(ValidationError) as info:
        import_mlflow(api.store, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert info.value.field == "mlflow"
    assert "pip install 'mltrail[mlflow]'" in str(info.value)

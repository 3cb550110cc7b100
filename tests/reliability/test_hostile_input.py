"""Hostile input never makes a 5xx or a traceback, with or without a token, on a real server
(SQLite and PostgreSQL), in embedded mode and in the CLI's JSON output (issue 12, items 6 and 8).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mltrail.store.http import HttpStore
from support.servers import ServerProcess

LAUNCH = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000  # past Python's 4,300-digit limit for int()

UNAUTHENTICATED_PATHS = [
    "/ui/%00",
    "/ui/" + "a" * 300,
    "/ui/" + "a/" * 3000,
    "/ui/..%2f..%2fetc%2fpasswd",
    "/%00",
    "/" + "a" * 5000,
    "/" + "a/" * 3000,
    "/api/v1/projects/%00",
    "/api/v1/" + "a/" * 3000,
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live_server(
    request: pytest.FixtureRequest,
    module_migrated_urls: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """A real server on SQLite, then PostgreSQL, each shared by the module's two server tests
    (a start costs seconds) and by them only: their stderr must hold no traceback."""
    home = tmp_path_factory.mktemp("hostile-server")
    started = ServerProcess(module_migrated_urls(request.param), home).start()
    yield started
    started.close()


def _get(server: ServerProcess, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(server.url + path, headers=headers, timeout=30)


def test_hostile_paths_answer_4xx_without_a_token(live_server: ServerProcess) -> None:
    statuses = {path[:40]: _get(live_server, path).status_code for path in UNAUTHENTICATED_PATHS}
    assert all(400 <= s < 500 or s == 200 for s in statuses.values()), statuses
    assert all(statuses[p[:40]] == 404 for p in UNAUTHENTICATED_PATHS if p.startswith("/ui/"))
    assert "Traceback" not in live_server.stderr


def test_hostile_bodies_and_numbers_answer_4xx_naming_the_field(live_server: ServerProcess) -> None:
    token = live_server.make_token("hostile")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    api = live_server.url + "/api/v1"
    with HttpStore(live_server.url, token) as store:
        p = store.create_project("hostile").id
        e = store.create_experiment(p).experiment_id
    bodies = {
        "deep metrics": '{"targets": [{"project": 1, "experiment": 1}], "metrics": ' + DEEP + "}",
        "huge integer": '{"targets": [{"project": 1, "experiment": 1}], "metrics": {"ex_a": '
        + HUGE
        + "}}",
        "deep project": '{"display_name": ' + DEEP + "}",
    }
    for name, body in bodies.items():
        for path in ("/external-metrics", "/projects"):
            answer = httpx.post(api + path, content=body, headers=headers, timeout=60)
            assert 400 <= answer.status_code < 500, (name, path, answer.text[:200])
            assert answer.json()["error"]["field"], (name, path)
        anonymous = httpx.post(api + "/projects", content=body, timeout=60)
        assert anonymous.status_code == 401, name
    queries = {
        f"/projects/{p}/experiments?offset={2**63}": "offset",
        f"/projects/{p}/experiments/{e}/logs?after_seq={2**63}": "after_seq",
        f"/projects/{p}/experiments/{e}/logs?after_seq={2**31}": "after_seq",
        f"/projects/{p}/experiments/{e}/series/read?key=loss&start={2**70}": "start",
    }
    for path, field in queries.items():
        answer = _get(live_server, "/api/v1" + path, token)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["error"]["field"] == field
    # ids a 32-bit column cannot hold name nothing (PostgreSQL would refuse the comparison)
    for path in (f"/projects/{2**40}", f"/projects/{p}/experiments/{2**40}", f"/jobs/{2**40}"):
        answer = _get(live_server, "/api/v1" + path, token)
        assert answer.status_code in (404, 422), (path, answer.text)
    assert "Traceback" not in live_server.stderr


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path / "home")
    return env


def test_ids_beyond_64_bits_are_one_line_in_embedded_mode(embedded_env: dict[str, str]) -> None:
    assert _cli(embedded_env, "projects", "create", "p").returncode == 0
    for args in (
        ["experiments", "logs", "-p", "1", "-e", str(2**64), "--no-follow"],
        ["experiments", "list", "-p", str(2**63)],
        ["jobs", "list", "-p", str(2**70)],
    ):
        done = _cli(embedded_env, *args)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            args,
            done.stderr,
        )


def test_json_output_keeps_non_finite_floats_and_big_integers_exactly(
    embedded_env: dict[str, str],
) -> None:
    import mltrail  # noqa: F401 - the API below runs in this process on the same home

    big = 2**70 + 1
    script = (
        "import mltrail, math\n"
        "api = mltrail.as_api()\n"
        "api.projects.create('p')\n"
        "with mltrail.start(1, 'r') as exp:\n"
        "    exp.log({'loss': float('nan'), 'acc': float('inf')})\n"
        f"api.experiments.update_metrics({{'ex_big': {big}, 'ex_nan': float('nan'),"
        " 'ex_neg': float('-inf')}, project=1, experiment=1)\n"
    )
    seeded = subprocess.run(
        [sys.executable, "-c", script], env=embedded_env, capture_output=True, text=True
    )
    assert seeded.returncode == 0, seeded.stderr
    listed = _cli(embedded_env, "experiments", "list", "-p", "1", "-o", "json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["ex_metrics"]["ex_big"] == big  # exact, not rounded through a float
    assert row["ex_metrics"]["ex_nan"] == {"$float": "NaN"}
    assert row["ex_metrics"]["ex_neg"] == {"$float": "-Infinity"}
    assert row["metrics"]["train/acc"] == {"$float": "Infinity"}

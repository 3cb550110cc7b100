"""System metrics: a run holds CPU, memory, disk and network series sampled every interval,
embedded and through a real server, on SQLite and PostgreSQL; the interval is 10 s by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mltrail.config import Settings
from mltrail.core.types import is_system_metric
from mltrail.sdk.experiment import start
from mltrail.sdk.system import SystemProbe
from mltrail.store.base import Store
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore

KEYS = {
    "system/cpu/percent",
    "system/cpu/process_percent",
    "system/memory/percent",
    "system/memory/used_mb",
    "system/memory/process_rss_mb",
    "system/disk/used_percent",
    "system/disk/read_mb_s",
    "system/disk/write_mb_s",
    "system/network/sent_mb_s",
    "system/network/recv_mb_s",
}


@pytest.fixture
def store(mode_store: Store) -> Store:
    return mode_store


# One run of three sampling intervals and a half, in a process of its own; the store is a
# database URL (embedded) or a server URL and token. The interval is the user's setting
# (MLTRAIL_SYSTEM_METRICS_INTERVAL), 1 s rather than the default 10 s: a periodic sampler shows
# in 3.5 s as it would in 35 s, and a sampler that only sampled at the start and end would still
# fail the count (one or two samples, not three or more). The default's 10 s is checked apart.
INTERVAL = 1.0
_RUN = """
import sys, time
from mltrail.config import Settings
from mltrail.sdk.experiment import start
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore

target, token, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = HttpStore(target, token) if target.startswith("http") else SqlStore.open(target)
settings = Settings.from_env().with_(strict=True)
assert settings.system_metrics and settings.system_metrics_interval == interval
with start("system", settings=settings, store=store) as exp:
    began = time.monotonic()
    while time.monotonic() - began < 3.5 * interval:
        exp.log({"loss": 1.0})
        time.sleep(0.05)
print("RUN", exp.project_id, exp.experiment_id, exp.iteration, flush=True)
store.close()
"""


SERVERS = {"sqlite": "shared_server", "postgres": "shared_pg_server"}


def _targets(request: pytest.FixtureRequest) -> dict[str, tuple[str, str]]:
    """Where each mode's run writes: (database URL, "") or (server URL, admin token)."""
    servers = {db: request.getfixturevalue(name) for db, name in SERVERS.items()}
    return {
        "embedded-sqlite": (request.getfixturevalue("migrated_sqlite_url"), ""),
        "embedded-postgres": (request.getfixturevalue("migrated_pg_url"), ""),
        **{f"server-{db}": (s.url, s.admin_token) for db, s in servers.items()},
    }


def _open(target: str, token: str) -> Store:
    return HttpStore(target, token) if token else SqlStore.open(target)


def _launch(target: tuple[str, str], output: Path) -> subprocess.Popen[bytes]:
    """The run in a process of its own; its output in files (a full pipe would stall it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_SYSTEM_METRICS_INTERVAL"] = str(INTERVAL)
    with output.with_suffix(".out").open("wb") as out, output.with_suffix(".err").open("wb") as err:
        argv = [sys.executable, "-c", _RUN, *target, str(INTERVAL)]
        return subprocess.Popen(argv, stdout=out, stderr=err, env=env)


def test_the_default_interval_is_10_seconds() -> None:
    settings = Settings.from_env({})
    assert settings.system_metrics and settings.system_metrics_interval == 10.0


@pytest.mark.slow
def test_a_run_of_three_intervals_has_its_system_metrics(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Embedded and through a real server, on SQLite and PostgreSQL: the four runs go on at the
    same time, each in its own process (a run captures its process's stdout and stderr), so
    the suite waits for one run, not four."""
    targets = _targets(request)
    children = {mode: _launch(target, tmp_path / mode) for mode, target in targets.items()}
    for mode, child in children.items():
        returncode = child.wait(timeout=300)
        out, err = ((tmp_path / f"{mode}.{name}").read_text() for name in ("out", "err"))
        assert returncode == 0, f"{mode}: {err}"
        project, number, iteration = out.split("RUN ")[-1].split()
        store = _open(*targets[mode])
        try:
            _check_system_series(mode, store, int(project), int(number), int(iteration))
        finally:
            store.close()


def _check_system_series(
    mode: str, store: Store, project: int, number: int, iteration: int
) -> None:
    summaries = {s.key: s for s in store.list_series(project, number) if s.phase == "train"}
    assert set(summaries) >= KEYS, mode
    for key in KEYS:
        # samples at about 1, 2 and 3 intervals, and one when the run ends
        assert summaries[key].count >= 3, (mode, key)
    memory = store.read_series(project, number, "system/memory/percent", "train")
    assert all(0 < v <= 100 for v in memory.values), mode
    rss = store.read_series(project, number, "system/memory/process_rss_mb", "train")
    assert all(v > 1 for v in rss.values), mode  # the training process holds more than 1 MB
    # stored at the run's iteration, so they line up with the training curves
    assert memory.iterations.max() <= iteration, mode


def test_the_off_switch_records_none(store):
    settings = Settings.from_env({"MLTRAIL_SYSTEM_METRICS": "off"}).with_(strict=True)
    with start("system", settings=settings, store=store) as exp:
        exp.log({"loss": 1.0})
    keys = [s.key for s in store.list_series(exp.project_id, exp.experiment_id)]
    assert keys == ["loss"]


def test_a_short_run_still_gets_one_sample_and_the_probe_reads_this_process(store):
    with start("system", settings=Settings.from_env().with_(strict=True), store=store) as exp:
        exp.log({"loss": 1.0})
    found = [
        s for s in store.list_series(exp.project_id, exp.experiment_id) if is_system_metric(s.key)
    ]
    assert {s.key for s in found} >= KEYS and all(s.count == 1 for s in found)
    sample = SystemProbe().sample()
    assert set(sample) >= KEYS and sample["system/memory/process_rss_mb"] > 1


def test_gpu_metrics_follow_what_nvml_finds():
    """nvidia-ml-py is installed by the test extra; with NVIDIA's driver every GPU has its five
    series, without it (this machine) none, and sampling goes on."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        count = 0
    probe = SystemProbe()
    gpu = {k for k in probe.sample() if k.startswith("system/gpu/")}
    probe.close()
    expected = {
        f"system/gpu/{i}/{name}"
        for i in range(count)
        for name in ("utilization_percent", "memory_used_mb", "memory_percent")
    }
    assert expected <= gpu and len(gpu) <= 5 * count

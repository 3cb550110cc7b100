"""System metrics: a 30 s run holds CPU, memory, disk and network series sampled every 10 s
(the defaults), embedded and through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from mltrail.config import Settings
from mltrail.core.types import is_system_metric
from mltrail.sdk.experiment import start
from mltrail.sdk.system import SystemProbe
from mltrail.store.base import Store

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


@pytest.mark.slow
def test_a_30_second_run_has_its_system_metrics(store):
    settings = Settings.from_env().with_(strict=True)  # the user's defaults: every 10 s
    assert settings.system_metrics and settings.system_metrics_interval == 10.0
    with start("system", settings=settings, store=store) as exp:
        began = time.monotonic()
        while time.monotonic() - began < 30.5:
            exp.log({"loss": 1.0})
            time.sleep(0.05)
    summaries = {
        s.key: s for s in store.list_series(exp.project_id, exp.experiment_id) if s.phase == "train"
    }
    assert set(summaries) >= KEYS
    for key in KEYS:
        # samples at about 10, 20 and 30 s, and one when the run ends
        assert summaries[key].count >= 3, key
    memory = store.read_series(exp.project_id, exp.experiment_id, "system/memory/percent", "train")
    assert all(0 < v <= 100 for v in memory.values)
    rss = store.read_series(
        exp.project_id, exp.experiment_id, "system/memory/process_rss_mb", "train"
    )
    assert all(v > 1 for v in rss.values)  # this Python process holds more than a megabyte
    # stored at the run's iteration, so they line up with the training curves
    assert memory.iterations.max() <= exp.iteration


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

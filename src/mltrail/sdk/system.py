"""System metrics: CPU, memory, disk, network and GPUs sampled into ``system/`` series.

A :class:`SystemSampler` thread reads them every ``interval`` seconds (10 by default,
``MLTRAIL_SYSTEM_METRICS_INTERVAL``) with psutil and, when the NVIDIA driver and
``nvidia-ml-py`` are present, NVML; each sample goes to a sink as one point per metric. A run's
sink is its writer (the points travel with the run's own batches); the agent's sink appends to
the job's experiment. A sample costs well under a millisecond of CPU, so at the default
interval the sampler uses far below 1% of a core (``bench/system_metrics.py`` measures it).

Keys (all in phase ``train``, so they are ordinary series): ``system/cpu/percent`` (the whole
machine), ``system/cpu/process_percent`` (the sampled process and its children, 100 = one
core), ``system/memory/percent``, ``system/memory/used_mb``, ``system/memory/process_rss_mb``,
``system/disk/used_percent`` (of the file system holding ``$MLTRAIL_HOME``'s parent),
``system/disk/read_mb_s``, ``system/disk/write_mb_s``, ``system/network/sent_mb_s``,
``system/network/recv_mb_s`` and, per GPU ``i``, ``system/gpu/i/utilization_percent``,
``system/gpu/i/memory_used_mb``, ``system/gpu/i/memory_percent``,
``system/gpu/i/temperature_c`` and ``system/gpu/i/power_w``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from mltrail.core.types import SYSTEM_PREFIX, SeriesChunk

if TYPE_CHECKING:
    from mltrail.config import Settings
    from mltrail.sdk.writer import Writer

_MB = 1024.0 * 1024.0

Sink = Callable[[dict[str, float], float], None]  # values, unix time


class Counters:
    """Machine-wide I/O counters at one moment, for rates between two samples."""

    def __init__(self) -> None:
        self.at = time.monotonic()
        disk = _quiet(psutil.disk_io_counters)
        net = _quiet(psutil.net_io_counters)
        self.disk = (disk.read_bytes, disk.write_bytes) if disk else None
        self.net = (net.bytes_sent, net.bytes_recv) if net else None


class SystemProbe:
    """Reads one sample of system metrics. Not thread-safe: one sampler owns it.

    Args:
        pid: the process whose own CPU and memory are reported (with its children).
        disk_path: a path on the file system whose fullness is reported.
    """

    def __init__(self, pid: int | None = None, disk_path: str = "/") -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.disk_path = disk_path
        self._children: dict[int, psutil.Process] = {}
        self._gpus = _Gpus.open()
        psutil.cpu_percent(None)  # the first call only starts the measurement
        self._cpu_percent(self.process)
        self._last = Counters()

    def sample(self) -> dict[str, float]:
        """The metrics since the previous sample (or the probe's creation), keyed for storage."""
        now = Counters()
        elapsed = max(now.at - self._last.at, 1e-6)
        memory = psutil.virtual_memory()
        values = {
            "cpu/percent": psutil.cpu_percent(None),
            "cpu/process_percent": self._process_cpu(),
            "memory/percent": memory.percent,
            "memory/used_mb": (memory.total - memory.available) / _MB,
            "memory/process_rss_mb": self._process_rss() / _MB,
        }
        usage = _quiet(psutil.disk_usage, self.disk_path)
        if usage is not None:
            values["disk/used_percent"] = usage.percent
        for name, old, new in (
            ("disk", self._last.disk, now.disk),
            ("network", self._last.net, now.net),
        ):
            if old is not None and new is not None:
                first, second = ("read", "write") if name == "disk" else ("sent", "recv")
                values[f"{name}/{first}_mb_s"] = (new[0] - old[0]) / _MB / elapsed
                values[f"{name}/{second}_mb_s"] = (new[1] - old[1]) / _MB / elapsed
        self._last = now
        values.update(self._gpus.sample())
        return {SYSTEM_PREFIX + k: float(v) for k, v in values.items()}

    def _tree(self) -> list[psutil.Process]:
        """The process and its living children, keeping each child's Process object so its
        CPU percentage is measured since the previous sample."""
        found = [self.process]
        with contextlib.suppress(psutil.Error):
            for child in self.process.children(recursive=True):
                found.append(self._children.setdefault(child.pid, child))
        alive = {p.pid for p in found}
        self._children = {pid: p for pid, p in self._children.items() if pid in alive}
        return found

    def _process_cpu(self) -> float:
        return sum(self._cpu_percent(p) for p in self._tree())

    def _process_rss(self) -> float:
        total = 0.0
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    @staticmethod
    def _cpu_percent(process: psutil.Process) -> float:
        try:
            return float(process.cpu_percent(None))
        except psutil.Error:
            return 0.0

    def close(self) -> None:
        self._gpus.close()


class _Gpus:
    """Per-GPU readings through NVML, or nothing when the driver or library is absent."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def open(cls) -> _Gpus:
        try:
            import pynvml  # nvidia-ml-py, the optional extra "gpu"

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            return cls(pynvml, [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)])
        except Exception:  # no library, no driver, no GPU: no GPU metrics
            return cls(None, [])

    def sample(self) -> dict[str, float]:
        values = {}
        for index, handle in enumerate(self._handles):
            for name in _GPU_READINGS:
                with contextlib.suppress(Exception):  # a GPU may lack a sensor
                    values[f"gpu/{index}/{name}"] = _read_gpu(self._nvml, handle, name)
        return values

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()


_GPU_READINGS = (
    "utilization_percent",
    "memory_used_mb",
    "memory_percent",
    "temperature_c",
    "power_w",
)


def _read_gpu(nvml: Any, handle: Any, name: str) -> float:
    """One NVML reading of one GPU, in the unit its key names."""
    if name == "utilization_percent":
        return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    if name == "temperature_c":
        return float(nvml.nvmlDeviceGetTemperature(handle, 0))  # 0: NVML_TEMPERATURE_GPU
    if name == "power_w":
        return nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    if name == "memory_used_mb":
        return info.used / _MB
    return 100.0 * info.used / info.total if info.total else 0.0


def _quiet(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or None where the platform or a container does not provide it."""
    try:
        return read(*args)
    except (OSError, RuntimeError, psutil.Error):
        return None


class SystemSampler:
    """A daemon thread that hands a sample to ``sink`` every ``interval`` seconds and one
    last sample when closed. Faults in a sample or the sink are swallowed: system metrics
    never disturb training.

    Args:
        sink: receives each sample's values and its unix time.
        interval: seconds between samples.
        probe: what reads the samples (one for this process by default).
    """

    def __init__(self, sink: Sink, interval: float, probe: SystemProbe | None = None) -> None:
        self.sink = sink
        self.interval = interval
        self.probe = probe or SystemProbe()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mltrail-system", daemon=True)

    def start(self) -> SystemSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def _take(self) -> None:
        with contextlib.suppress(Exception):
            self.sink(self.probe.sample(), time.time())
            self.samples += 1

    def close(self) -> None:
        """Stop the thread and take a last sample (so even a short run has one)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._take()
        self.probe.close()


def system_sampler(
    settings: Settings, writer: Writer, position: Callable[[], tuple[int, int]]
) -> SystemSampler | None:
    """A started sampler feeding ``writer``, or None when ``settings`` turn it off.

    ``position`` answers the run's current (iteration, epoch) (-1 for none yet): each sample is
    stored at the run's iteration, so it lines up with the training curves (and a rewind
    discards the samples after the iteration it goes back to).
    """
    if not settings.system_metrics:
        return None

    def sink(values: dict[str, float], at: float) -> None:
        iteration, epoch = position()
        writer.add_chunks(sample_chunks(values, max(iteration, 0), epoch, at))

    probe = SystemProbe(disk_path=str(settings.home.parent))
    return SystemSampler(sink, settings.system_metrics_interval, probe).start()


def sample_chunks(
    values: dict[str, float], iteration: int, epoch: int, at: float
) -> list[SeriesChunk]:
    """One sample as one-point chunks (phase ``train``), as the writer and store take them."""
    it, ep, t = (
        np.array([x], dtype=d)
        for x, d in ((iteration, np.int64), (epoch, np.int64), (at, np.float64))
    )
    return [
        SeriesChunk(key, "train", it, ep, np.array([value], dtype=np.float64), t)
        for key, value in values.items()
    ]

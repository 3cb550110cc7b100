"""System metrics of the jobs an agent runs, sampled by the agent into the job's experiment.

The job's own SDK is told not to sample (``MLTRAIL_SYSTEM_METRICS=off``), so a job is measured
once, whether or not it uses mltrail: the machine's figures and the job's process tree's CPU
and memory, every ``system_metrics_interval`` seconds, as the SDK would record them
(:mod:`mltrail.sdk.system`). A sample's iteration is its number within the job's attempt.
"""

from __future__ import annotations

import itertools
import uuid

from mltrail.config import Settings
from mltrail.core.jobs import Job
from mltrail.core.types import MetricBatch
from mltrail.sdk.system import SystemProbe, SystemSampler, sample_chunks
from mltrail.store.base import Store


def job_sampler(store: Store, settings: Settings, job: Job, pid: int) -> SystemSampler | None:
    """A started sampler of the job's process ``pid`` appending to the job's experiment, or
    None when the agent's settings turn system metrics off (or the process already ended)."""
    if not settings.system_metrics:
        return None
    try:
        probe = SystemProbe(pid, disk_path=str(settings.home.parent))
    except Exception:  # the process is gone already: nothing to measure
        return None
    client_id = f"agent-system-{uuid.uuid4().hex}"
    numbers = itertools.count()

    def sink(values: dict[str, float], at: float) -> None:
        number = next(numbers)
        chunks = tuple(sample_chunks(values, number, -1, at))
        store.append_points(
            job.project_id, job.experiment_id, MetricBatch(client_id, number, chunks)
        )

    return SystemSampler(sink, settings.system_metrics_interval, probe).start()

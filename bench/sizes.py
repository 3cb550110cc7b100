"""How big each workload is: the issue's sizes, and a reduced set for ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Workload sizes. MLflow gets fewer points where it would take minutes: its figures are
    per call or per point, so the ratio does not depend on the count."""

    call_calls: int  # 1: exp.log calls timed one by one
    mlflow_call_calls: int
    ingest_keys: int  # 2: keys x iterations from the SDK
    ingest_iterations: int
    mlflow_ingest_iterations: int
    history_points: int  # 4: the series read at chart resolution and exported in full
    chart_repeats: int
    full_repeats: int
    mlflow_history_repeats: int
    list_experiments: int  # 5
    list_repeats: int
    scaling: tuple[int, ...]  # 7: series lengths
    stalled_points: int  # 6: points logged while the server is stopped
    concurrent_processes: int  # 8
    concurrent_batches: int
    concurrent_iterations_per_batch: int
    concurrent_keys: int


FULL = Sizes(
    call_calls=100_000,
    mlflow_call_calls=10_000,
    ingest_keys=20,
    ingest_iterations=50_000,
    mlflow_ingest_iterations=2_500,
    history_points=100_000,
    chart_repeats=20,
    full_repeats=5,
    mlflow_history_repeats=3,
    list_experiments=1_000,
    list_repeats=10,
    scaling=(10_000, 100_000, 1_000_000, 10_000_000),
    stalled_points=1_000_000,
    concurrent_processes=16,
    concurrent_batches=20,
    concurrent_iterations_per_batch=500,
    concurrent_keys=20,
)

QUICK = Sizes(
    call_calls=20_000,
    mlflow_call_calls=1_000,
    ingest_keys=20,
    ingest_iterations=5_000,
    mlflow_ingest_iterations=250,
    history_points=10_000,
    chart_repeats=5,
    full_repeats=2,
    mlflow_history_repeats=1,
    list_experiments=100,
    list_repeats=3,
    scaling=(10_000, 100_000),
    stalled_points=200_000,
    concurrent_processes=4,  # 16 interpreters starting at once dominate a 2-core quick run
    concurrent_batches=4,
    concurrent_iterations_per_batch=100,
    concurrent_keys=20,
)

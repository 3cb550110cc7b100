"""How big each workload is: the issue's sizes, and a reduced set for ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Workload sizes. Peers get fewer points where they would take minutes: their figures are
    per call or per point (ingest rates, bytes per point), so the ratio does not depend on the
    count; reads and lists are the same size on every side."""

    call_calls: int  # exp.log calls timed one by one
    peer_call_calls: int  # async log_metric calls
    sync_calls: int  # exp.log + flush, and sync log_metric
    peer_sync_calls: int
    ingest_keys: int  # keys x iterations from the SDK (and from the MLflow client)
    ingest_iterations: int
    ingest_threads: int  # runs logged at once from as many threads
    peer_ingest_iterations: int  # per peer run; split over the threads for the threaded run
    flush_iterations: int  # realistic flushes: iterations (points per series) per flush
    flush_experiment_iterations: int  # keys x this, flushed every flush_iterations
    peer_flush_iterations: int
    history_points: int  # the series read at chart resolution and exported in full
    chart_repeats: int
    peer_chart_repeats: int
    full_repeats: int
    peer_history_repeats: int
    list_experiments: int  # experiments listed / runs searched
    list_repeats: int
    peer_list_repeats: int
    scaling: tuple[int, ...]  # series lengths of the scaling curve
    stalled_points: int  # points logged while the server is stopped
    concurrent_processes: int
    concurrent_batches: int
    concurrent_iterations_per_batch: int
    concurrent_keys: int
    cliff_links: int  # weights links of the hash that update_metrics_per_iteration writes to
    cliff_keys: int  # keys of the many-keys experiment
    cliff_key_points: int  # points logged with 20 keys and with cliff_keys keys
    cliff_log_lines: int  # log lines printed by `experiments logs`
    cliff_thread_iterations: int  # iterations of 4 keys logged by 1 thread, then by 8
    cliff_compare_runs: int  # runs of the compare view
    cliff_compare_points: int  # points per run
    cliff_read_seconds: float  # concurrent compare reads, per server configuration


FULL = Sizes(
    call_calls=100_000,
    peer_call_calls=10_000,
    sync_calls=300,
    peer_sync_calls=100,
    ingest_keys=20,
    ingest_iterations=50_000,
    ingest_threads=4,
    peer_ingest_iterations=2_500,
    flush_iterations=10,
    flush_experiment_iterations=5_000,
    peer_flush_iterations=1_000,
    history_points=100_000,
    chart_repeats=20,
    peer_chart_repeats=10,
    full_repeats=5,
    peer_history_repeats=1,
    list_experiments=1_000,
    list_repeats=10,
    peer_list_repeats=5,
    scaling=(10_000, 100_000, 1_000_000, 10_000_000),
    stalled_points=1_000_000,
    concurrent_processes=16,
    concurrent_batches=20,
    concurrent_iterations_per_batch=500,
    concurrent_keys=20,
    cliff_links=10_000,
    cliff_keys=1_000,
    cliff_key_points=200_000,
    cliff_log_lines=1_000_000,
    cliff_thread_iterations=200_000,
    cliff_compare_runs=100,
    cliff_compare_points=100_000,
    cliff_read_seconds=5.0,
)

QUICK = Sizes(
    call_calls=20_000,
    peer_call_calls=1_000,
    sync_calls=50,
    peer_sync_calls=20,
    ingest_keys=20,
    ingest_iterations=5_000,
    ingest_threads=4,
    peer_ingest_iterations=400,
    flush_iterations=10,
    flush_experiment_iterations=500,
    peer_flush_iterations=100,
    history_points=3_000,  # flushed every 10 iterations: one round trip each
    chart_repeats=5,
    peer_chart_repeats=3,
    full_repeats=2,
    peer_history_repeats=1,
    list_experiments=100,
    list_repeats=3,
    peer_list_repeats=3,
    scaling=(10_000, 100_000),
    stalled_points=200_000,
    concurrent_processes=4,  # 16 interpreters starting at once dominate a 2-core quick run
    concurrent_batches=4,
    concurrent_iterations_per_batch=100,
    concurrent_keys=20,
    cliff_links=1_000,
    cliff_keys=200,
    cliff_key_points=10_000,
    cliff_log_lines=50_000,
    cliff_thread_iterations=10_000,
    cliff_compare_runs=10,
    cliff_compare_points=10_000,
    cliff_read_seconds=1.0,
)

"""Builders of the records tests send: metric chunks and batches, log batches, REST chunks.

One copy for every test module (import them: ``from support.factories import chunk, batch``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

import numpy as np

from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk

T0 = 1_700_000_000.0


def chunk(
    key: str,
    iterations: Iterable[int],
    values: Iterable[float],
    phase: str = "train",
    epochs: Iterable[int] | None = None,
    t0: float = T0,
) -> SeriesChunk:
    """A columnar chunk; epochs default to -1 ("no epoch"), times step 10 ms from ``t0``."""
    it = np.asarray(list(iterations) if not isinstance(iterations, np.ndarray) else iterations)
    it = it.astype(np.int64)
    ep = np.full(len(it), -1) if epochs is None else np.asarray(list(epochs))
    vals = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    times = t0 + np.arange(len(it), dtype=np.float64) * 0.01
    return SeriesChunk(key, phase, it, ep.astype(np.int64), vals.astype(np.float64), times)


def ramp(key: str, start: int, n: int, rng: np.random.Generator | None = None) -> SeriesChunk:
    """``n`` points from iteration ``start``: random normal values, or ``0.5`` each."""
    values = rng.normal(size=n) if rng is not None else np.full(n, 0.5)
    return chunk(key, range(start, start + n), values)


def batch(seq: int, *chunks: SeriesChunk, client: str = "client-1") -> MetricBatch:
    """A metric batch of ``chunks`` with ``(client, seq)``."""
    return MetricBatch(client, seq, tuple(chunks))


def ramp_batch(seq: int, start: int = 0, n: int = 5, client: str = "c", key: str = "loss"):
    """A one-series batch of ``n`` points from iteration ``start``."""
    return batch(seq, ramp(key, start, n), client=client)


def log_batch(client: str, seq: int, *messages: str, t0: float = T0) -> LogBatch:
    """Lines of stdout at INFO, one second apart."""
    lines = tuple(LogLine(t0 + i, "stdout", "INFO", m) for i, m in enumerate(messages))
    return LogBatch(client, seq, lines)


def _b64(values: Sequence[float], dtype: str) -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


def wire_chunk(n: int = 2, **overrides: object) -> dict[str, object]:
    """A chunk as a REST body holds it (columns base64 of little-endian arrays)."""
    body: dict[str, object] = {
        "key": "loss",
        "phase": "train",
        "n": n,
        "iterations": _b64(range(n), "<i8"),
        "epochs": _b64([-1] * n, "<i8"),
        "values": _b64([0.5] * n, "<f8"),
        "times": _b64([1.0] * n, "<f8"),
    }
    return body | overrides

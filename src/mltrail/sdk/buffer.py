"""Columnar in-memory buffer of metric points, and its conversion to batches.

Each ``exp.log`` call appends its iteration, epoch and time once to per-call columns, and per
metric only the value and the call's index to that series' columns (``array`` objects, no
tuple per point). Turning the buffer into batches is then a few numpy operations per series:
``np.frombuffer`` over the arrays and one gather of the per-call columns.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable

import numpy as np

from mltrail.core.types import MetricBatch, SeriesChunk

MAX_INT64 = 2**63 - 1


class Column:
    """One series' buffered points: values and the index of the call each came from."""

    __slots__ = ("calls", "values")

    def __init__(self) -> None:
        self.values = array("d")
        self.calls = array("q")


class PointBuffer:
    """Points buffered since the last drain, by phase and key.

    Attributes:
        iterations / epochs / times: one entry per ``append`` call.
        phases: phase -> key -> :class:`Column`.
        points: metric points held.
    """

    __slots__ = ("epochs", "iterations", "phases", "points", "times")

    def __init__(self) -> None:
        self.iterations = array("q")
        self.epochs = array("q")
        self.times = array("d")
        self.phases: dict[str, dict[str, Column]] = {}
        self.points = 0

    def append(
        self, phase: str, iteration: int, epoch: int, t: float, pairs: Iterable[tuple[str, float]]
    ) -> int:
        """Add one step's already-validated ``(key, value)`` pairs; returns points now held."""
        call = len(self.times)
        self.iterations.append(iteration)
        self.epochs.append(epoch)
        self.times.append(t)
        columns = self.phases.get(phase)
        if columns is None:
            columns = self.phases[phase] = {}
        n = 0
        for key, value in pairs:
            column = columns.get(key)
            if column is None:
                column = columns[key] = Column()
            column.values.append(value)
            column.calls.append(call)
            n += 1
        self.points += n
        return self.points

    def chunks(self) -> list[SeriesChunk]:
        """Every buffered series as one chunk of numpy columns."""
        if not self.points:
            return []
        iterations = np.frombuffer(self.iterations, dtype=np.int64)
        epochs = np.frombuffer(self.epochs, dtype=np.int64)
        times = np.frombuffer(self.times, dtype=np.float64)
        out = []
        for phase, columns in self.phases.items():
            for key, column in columns.items():
                calls = np.frombuffer(column.calls, dtype=np.int64)
                # fancy indexing and copy() give arrays that own their memory, so the
                # buffer's arrays can be freed (or reused) independently
                out.append(
                    SeriesChunk(
                        key,
                        phase,
                        iterations[calls],
                        epochs[calls],
                        np.frombuffer(column.values, dtype=np.float64).copy(),
                        times[calls],
                    )
                )
        return out


def metric_batches(
    client_id: str, seq: itertools.count, chunks: Iterable[SeriesChunk], limit: int
) -> list[MetricBatch]:
    """Group series chunks into batches of at most ``limit`` points, splitting long series."""
    batches: list[MetricBatch] = []
    current: list[SeriesChunk] = []
    size = 0
    for chunk in chunks:
        n = len(chunk)
        for start in range(0, n, limit):
            part = chunk if n <= limit else _slice(chunk, start, start + limit)
            length = len(part)
            if size and size + length > limit:
                batches.append(MetricBatch(client_id, next(seq), tuple(current)))
                current, size = [], 0
            current.append(part)
            size += length
    if current:
        batches.append(MetricBatch(client_id, next(seq), tuple(current)))
    return batches


def _slice(chunk: SeriesChunk, start: int, stop: int) -> SeriesChunk:
    return SeriesChunk(
        chunk.key,
        chunk.phase,
        chunk.iterations[start:stop],
        chunk.epochs[start:stop],
        chunk.values[start:stop],
        chunk.times[start:stop],
    )

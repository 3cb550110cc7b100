"""Copying runs recorded by other trackers into the store: ``from_mlflow`` (an MLflow tracking
server or its database) and ``from_tensorboard`` (event files). Each is a thin reader over the
other tool's own library that makes ordinary Store calls, so an imported run is an ordinary
experiment, and both are idempotent: a run already imported is skipped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mltrail.core.errors import ConflictError
from mltrail.core.types import MetricBatch, Phase, Project, SeriesChunk
from mltrail.store.base import Store

BATCH_POINTS = 20_000  # points per append: keeps each request well under the body limits
_OTHER_PHASES = (Phase.VALIDATION.value, Phase.TEST.value)


@dataclass
class ImportReport:
    """What an import did, for the CLI to print."""

    projects_created: int = 0
    projects_reused: int = 0
    runs_imported: int = 0
    runs_skipped: int = 0
    params: int = 0
    tags: int = 0
    points: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line of counts."""
        projects = self.projects_created + self.projects_reused
        return (
            f"imported {self.runs_imported} runs ({self.runs_skipped} already imported, skipped) "
            f"into {projects} project{'' if projects == 1 else 's'} "
            f"({self.projects_created} created): {self.params} params, {self.tags} tags, "
            f"{self.points:,} metric points, {self.artifacts} artifacts "
            f"({self.artifact_bytes:,} bytes)"
        )


def project_named(store: Store, name: str, description: str, report: ImportReport) -> Project:
    """The user's project with that display name, created when missing (with
    ``unique_name``: of two imports starting at once, one creates it, the other reuses it)."""
    found = store.find_project(name)
    if found is None:
        try:
            created = store.create_project(name, description, unique_name=True)
        except ConflictError:
            found = store.find_project(name)
            if found is None:
                raise
        else:
            report.projects_created += 1
            return created
    report.projects_reused += 1
    return found


def series_of(name: str) -> tuple[str, str]:
    """A metric name as (phase, key): ``validation/...`` and ``test/...`` name those phases (as
    the MLflow surface reads them), every other name is a ``train`` series of that name."""
    head, sep, rest = name.partition("/")
    return (head, rest) if sep and rest and head in _OTHER_PHASES else (Phase.TRAIN.value, name)


def append_series(
    store: Store, ref: tuple[int, int], client_id: str, series: Sequence[SeriesChunk]
) -> int:
    """Append series in batches numbered from 0 under ``client_id``: an import run again
    (after an interruption) sends the same batches, which the store keeps once."""
    stored, seq = 0, 0
    for chunk in series:
        for start in range(0, max(len(chunk), 1), BATCH_POINTS):
            part = slice(start, start + BATCH_POINTS)
            piece = SeriesChunk(
                key=chunk.key,
                phase=chunk.phase,
                iterations=chunk.iterations[part],
                epochs=chunk.epochs[part],
                values=chunk.values[part],
                times=chunk.times[part],
            )
            if len(piece):
                batch = MetricBatch(client_id=client_id, seq=seq, chunks=(piece,))
                stored += store.append_points(ref[0], ref[1], batch)
            seq += 1
    return stored


def chunk_of(name: str, rows: Sequence[tuple[int, float, float]]) -> SeriesChunk:
    """One series from (step, value, unix time) rows, in step order (a stable sort: points of
    one step keep their order)."""
    phase, key = series_of(name)
    steps = np.array([r[0] for r in rows], np.int64)
    order = np.argsort(steps, kind="stable")
    return SeriesChunk(
        key=key,
        phase=phase,
        iterations=steps[order],
        epochs=np.full(len(order), -1, np.int64),
        values=np.array([r[1] for r in rows], np.float64)[order],
        times=np.array([r[2] for r in rows], np.float64)[order],
    )

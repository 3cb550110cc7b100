"""Parse constructors of metric points: the chunks a batch carries (and how many it may carry)
and the entries of a batched series read. Checked once, at the entrance, as
:mod:`mltrail.core.validation` checks everything else (whose key, phase and integer rules these
use); :class:`ValidationError` names the field at fault. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mltrail.core.errors import ValidationError
from mltrail.core.types import MAX_BATCH_CHUNKS, SeriesChunk, SeriesQuery
from mltrail.core.validation import metric_key, phase, require_int

MAX_BATCH_SERIES = 5_000  # series one batched read may answer (a view's every chart)

# points keep their times as int64 milliseconds (and their deltas): 1e16 s wrapped to -9.2e15
MAX_UNIX_TIME = 1e13
# epochs are stored in 32-bit columns (a series' last epoch, its rollups' epochs): PostgreSQL
# refuses a larger one mid-append, SQLite kept it
MAX_EPOCH = 2**31 - 1


def batch_chunk_count(count: int, field: str = "chunks") -> int:
    """A points batch holds at most :data:`MAX_BATCH_CHUNKS` chunks (checked before any is
    decoded)."""
    if count > MAX_BATCH_CHUNKS:
        raise ValidationError(
            f"holds {count} chunks, at most {MAX_BATCH_CHUNKS} per batch (send several batches)",
            field,
        )
    return count


def series_chunk(chunk: SeriesChunk) -> SeriesChunk:
    """Check a columnar chunk: key, phase, at least one point, equal-length arrays,
    iterations >= 0, epochs from 0 to :data:`MAX_EPOCH` (or -1: none)."""
    key = metric_key(chunk.key)
    ph = phase(chunk.phase)
    n = len(chunk.iterations)
    if not n:
        raise ValidationError("must hold at least one point (an empty chunk means nothing)",
                              f"{key}.n")  # fmt: skip
    for name in ("epochs", "values", "times"):
        if len(getattr(chunk, name)) != n:
            raise ValidationError(
                f"has {len(getattr(chunk, name))} entries for {n} iterations", f"{key}.{name}"
            )
    iterations = np.asarray(chunk.iterations, dtype=np.int64)
    epochs = np.asarray(chunk.epochs, dtype=np.int64)
    if n and int(iterations.min()) < 0:
        raise ValidationError("must be >= 0", f"{key}.iteration")
    if n and int(epochs.min()) < -1:
        raise ValidationError("must be >= 0", f"{key}.epoch")
    if n and int(epochs.max()) > MAX_EPOCH:
        raise ValidationError(f"must be at most {MAX_EPOCH}", f"{key}.epoch")
    values = np.asarray(chunk.values, dtype=np.float64)
    times = np.asarray(chunk.times, dtype=np.float64)
    if n and not (np.abs(times) <= MAX_UNIX_TIME).all():  # False for NaN too
        raise ValidationError(
            f"must be finite unix times within +-{MAX_UNIX_TIME:.0e} seconds", f"{key}.time"
        )
    return SeriesChunk(key, ph, iterations, epochs, values, times, chunk.packed)


def series_chunks(chunks: Sequence[SeriesChunk]) -> list[SeriesChunk]:
    """:func:`series_chunk` of each chunk of a batch, the numeric bounds checked once over all
    of their points (a batch of 20 series paid 8 numpy reductions a chunk); a batch that fails
    them is checked chunk by chunk, so the error names the chunk and field at fault."""
    if len(chunks) < 4:
        return [series_chunk(c) for c in chunks]
    checked = []
    for chunk in chunks:
        n = len(chunk.iterations)
        lengths = (len(getattr(chunk, name)) for name in ("epochs", "values", "times"))
        if not n or any(m != n for m in lengths) or not _plain_key(chunk):
            return [series_chunk(c) for c in chunks]  # the first error, naming its chunk
        checked.append(SeriesChunk(
            chunk.key, chunk.phase,
            np.asarray(chunk.iterations, dtype=np.int64), np.asarray(chunk.epochs, dtype=np.int64),
            np.asarray(chunk.values, dtype=np.float64), np.asarray(chunk.times, dtype=np.float64),
            chunk.packed,
        ))  # fmt: skip
    iterations = np.concatenate([c.iterations for c in checked])
    epochs = np.concatenate([c.epochs for c in checked])
    times = np.concatenate([c.times for c in checked])
    if not (
        iterations.min() >= 0
        and epochs.min() >= -1
        and epochs.max() <= MAX_EPOCH
        and (np.abs(times) <= MAX_UNIX_TIME).all()  # False for NaN too
    ):
        return [series_chunk(c) for c in chunks]
    return checked


def _plain_key(chunk: SeriesChunk) -> bool:
    """Whether the chunk's key and phase are plain strings that pass their checks as they are."""
    if type(chunk.key) is not str or type(chunk.phase) is not str:
        return False
    try:
        return metric_key(chunk.key) == chunk.key and phase(chunk.phase) == chunk.phase
    except ValidationError:
        return False


def series_queries(value: Any, field: str = "series") -> tuple[SeriesQuery, ...]:
    """The entries of a batched series read: a non-empty list of objects with ``project``,
    ``experiment`` (``project_id`` / ``experiment_id`` accepted), optional ``key`` and
    ``phase``; at most :data:`MAX_BATCH_SERIES`."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValidationError("must be a non-empty list of series", field)
    if len(value) > MAX_BATCH_SERIES:
        raise ValidationError(f"at most {MAX_BATCH_SERIES:,} entries, got {len(value):,}", field)
    return tuple(_series_query(item, f"{field}[{i}]") for i, item in enumerate(value))


_QUERY_FIELDS = frozenset(("project", "experiment", "project_id", "experiment_id", "key", "phase"))


def _series_query(item: Any, field: str) -> SeriesQuery:
    if isinstance(item, SeriesQuery):
        item = {"project": item.project_id, "experiment": item.experiment_id,
                "key": item.key, "phase": item.phase}  # fmt: skip
    if not isinstance(item, Mapping):
        raise ValidationError("must be an object", field)
    for name in item:  # a newer client's flag: refused by name, as the request models do
        if name not in _QUERY_FIELDS:
            raise ValidationError(
                "unknown field: this server does not take it (is the client newer?)",
                f"{field}.{name}",
            )
    project = item.get("project", item.get("project_id"))
    experiment = item.get("experiment", item.get("experiment_id"))
    key, phase_ = item.get("key"), item.get("phase")
    return SeriesQuery(
        require_int(project, f"{field}.project", minimum=1),
        require_int(experiment, f"{field}.experiment", minimum=1),
        None if key is None else metric_key(key, f"{field}.key"),
        None if phase_ is None else phase(phase_, f"{field}.phase"),
    )

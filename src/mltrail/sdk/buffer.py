"""In-memory buffer of metric points, and its conversion to columnar batches.

``exp.log`` appends one record per call, ``(phase, iteration, epoch, time, keys, *values)``
(the caller's dict read into one tuple, its values last), so the training thread does one list
append per call whatever the number of metrics. The writer thread turns records into numpy columns: calls with
the same phase and keys become one values matrix (``np.fromiter`` over the values tuples), and
each series gathers the per-call iteration, epoch and time columns by call index.

A record holds strings, numbers and its keys' tuple (one per layout, long untracked), never
a dict nor a tuple of its own: the garbage collector stops tracking such a tuple at its first
collection. A tuple holding a dict stays tracked; one holding a new tuple (the values, when
they were a tuple of their own) too, since the collection looks at the record before that
tuple, which it untracks only afterwards: every record of a young collection that a middle
one followed was promoted to the oldest generation still tracked, and enough of them triggered
full collections (every object of the process visited): with 400,000 dicts held by the
process, 7 in 400,000 appends, the garbage collector 0.33 us of CPU time an append against
0.09 us with one tuple a record (and half as many young collections: one tracked object an
append instead of two).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from operator import and_, is_, itemgetter
from typing import Any, cast

import numpy as np

from mltrail.core.types import MAX_BATCH_CHUNKS, LogBatch, MetricBatch, SeriesChunk

MAX_INT64 = 2**63 - 1
RUN_CALLS_AT_LEAST = 8  # calls a run holds on average for the grouping by runs to pay

# phase, iteration, epoch, time, keys, then a value per key
Call = tuple[Any, ...]
VALUES_AT = 5  # where a record's values start
_PHASE, _ITERATION, _EPOCH = itemgetter(0), itemgetter(1), itemgetter(2)
_TIME, _KEYS, _VALUES = itemgetter(3), itemgetter(4), itemgetter(slice(VALUES_AT, None))


def record(phase: str, iteration: int, epoch: int, t: float, values: dict[str, float]) -> Call:
    """One call's record, as :meth:`Writer.add_record` appends it."""
    return (phase, iteration, epoch, t, tuple(values), *values.values())


def series_chunks(calls: Sequence[Call]) -> list[SeriesChunk]:
    """The buffered calls as one chunk of numpy columns per series, each in call order."""
    n = len(calls)
    if not n:
        return []
    iterations = np.fromiter(map(_ITERATION, calls), np.int64, n)
    epochs = np.fromiter(map(_EPOCH, calls), np.int64, n)
    times = np.fromiter(map(_TIME, calls), np.float64, n)
    pieces: dict[tuple[str, str], list[tuple[np.ndarray | None, np.ndarray]]] = {}
    for (phase, keys), indices in _groups(calls).items():
        if not keys:
            continue
        picked, count, where = _picked(calls, indices)
        flat = itertools.chain.from_iterable(map(_VALUES, picked))
        matrix = np.fromiter(flat, np.float64, count * len(keys)).reshape(count, len(keys))
        for column, key in enumerate(keys):
            pieces.setdefault((phase, key), []).append((where, matrix[:, column]))
    for shared in (iterations, epochs, times):
        shared.flags.writeable = False  # shared by the series of the usual case, below
    out = []
    # a group's calls' columns, by the identity of its indices (alive in ``pieces``): shared,
    # read-only, by the group's series, as in the usual case (8 threads logging 4 keys each
    # picked each column 4 times over)
    group_columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for (phase, key), parts in pieces.items():
        where, values = _in_call_order(parts)
        if where is None:  # every call logged this series: its columns are the calls' own
            out.append(SeriesChunk(key, phase, iterations, epochs, values, times))
            continue
        columns = group_columns.get(id(where)) if len(parts) == 1 else None
        if columns is None:
            columns = (iterations[where], epochs[where], times[where])
            if len(parts) == 1:
                for array in columns:
                    array.flags.writeable = False
                group_columns[id(where)] = columns
        out.append(SeriesChunk(key, phase, columns[0], columns[1], values, columns[2]))
    return out


# a group's calls: None for every call, else their indices, or the ranges of its runs
Group = list[int] | list[range] | None


def _picked(calls: Sequence[Call], group: Group) -> tuple[Iterable[Call], int, np.ndarray | None]:
    """A group's calls, their count and their indices (None: every call)."""
    if group is None:
        return calls, len(calls), None
    if group and type(group[0]) is range:  # runs: sliced, not a lookup per call
        runs = cast(list[range], group)
        picked = itertools.chain.from_iterable(calls[r.start : r.stop] for r in runs)
        where = np.concatenate([np.arange(r.start, r.stop, dtype=np.int64) for r in runs])
        return picked, len(where), where
    indices = cast(list[int], group)
    return map(calls.__getitem__, indices), len(indices), np.array(indices, dtype=np.int64)


def _groups(calls: Sequence[Call]) -> dict[tuple[str, tuple[str, ...]], Group]:
    """The calls' indices by signature: phase and keys in order (which lays out the values).
    ``None`` stands for every call: the usual case (one call site logging the same keys),
    told without a Python-level loop over the calls; calls that come in runs are grouped as
    the ranges of their runs."""
    n = len(calls)
    phases = list(map(_PHASE, calls))
    keys = list(map(_KEYS, calls))
    first = keys[0]
    one_phase = phases.count(phases[0]) == n
    if one_phase and keys[-1] is first and keys.count(first) == n:
        return {(phases[0], first): None}
    starts = _run_starts(phases, keys, one_phase)
    if starts is not None:
        return _groups_of_runs(phases, keys, starts)
    if one_phase and keys.count(first) == n:  # equal keys, each call its own tuple
        return {(phases[0], first): None}
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for index, signature in enumerate(zip(phases, keys, strict=True)):
        group = groups.get(signature)
        if group is None:
            groups[signature] = [index]
        else:
            group.append(index)
    return dict(groups)


def _run_starts(
    phases: list[str], keys: list[tuple[str, ...]], one_phase: bool
) -> list[int] | None:
    """Where each run of calls with the very same phase and keys objects starts, when the
    calls come in runs (None when they mostly do not).

    Threads logging their own keys take turns by GIL switch interval, hundreds of calls
    each, and a call site's keys are one tuple (its layout's, see ``Experiment.log``): such
    runs are found by identity with C-level scans (``map(is_)``, ``list.index``) instead of
    a Python step per call (a third of a drain's CPU with 8 threads logging). Equal keys in
    distinct tuples only make more runs; :func:`_groups_of_runs` joins them by equality."""
    same = list(map(is_, keys[1:], keys[:-1]))
    if not one_phase:
        same = list(map(and_, same, map(is_, phases[1:], phases[:-1])))
    if same.count(False) * RUN_CALLS_AT_LEAST > len(keys):
        return None
    starts, at = [0], 0
    try:
        while True:
            at = same.index(False, at) + 1
            starts.append(at)
    except ValueError:  # no other run
        return starts


def _groups_of_runs(
    phases: list[str], keys: list[tuple[str, ...]], starts: list[int]
) -> dict[tuple[str, tuple[str, ...]], Group]:
    """:func:`_groups` from the starts of runs of calls of one signature: each signature's
    runs as ranges (its calls are sliced, not looked up one by one)."""
    groups: dict[tuple[str, tuple[str, ...]], list[range]] = {}
    for start, stop in zip(starts, [*starts[1:], len(keys)], strict=True):
        groups.setdefault((phases[start], keys[start]), []).append(range(start, stop))
    return dict(groups)


def _in_call_order(
    parts: list[tuple[np.ndarray | None, np.ndarray]],
) -> tuple[np.ndarray | None, np.ndarray]:
    """A series' call indices and values in call order (``None``: every call, in order)."""
    if len(parts) == 1:
        where, values = parts[0]
        return where, np.ascontiguousarray(values)
    where = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    order = np.argsort(where, kind="stable")
    return where[order], values[order]


def merge_series(chunks: Iterable[SeriesChunk]) -> list[SeriesChunk]:
    """One chunk per series (key, phase), its pieces joined in the order given (so each
    series' points keep the order they were logged in), series in order of first appearance.

    A drain holds a series in several pieces (one per compaction of the records, one from the
    records left); a server spends about as much on each chunk of a batch as on thousands of
    its points (a summary, a rollup merge per level, a block seal), so the fewer, longer
    chunks the better."""
    grouped: dict[tuple[str, str], list[SeriesChunk]] = {}
    for chunk in chunks:
        if len(chunk):
            grouped.setdefault((chunk.key, chunk.phase), []).append(chunk)
    joined: dict[tuple[int, ...], np.ndarray] = {}
    return [parts[0] if len(parts) == 1 else _joined(parts, joined) for parts in grouped.values()]


def _joined(parts: list[SeriesChunk], joined: dict[tuple[int, ...], np.ndarray]) -> SeriesChunk:
    """The pieces of one series as one chunk. ``joined``: columns already joined, by the
    identity of their pieces: the series of one compaction share their iteration, epoch and
    time columns (:func:`series_chunks`), so those are joined once for all of them."""
    first = parts[0]
    columns = []
    for name in ("iterations", "epochs", "values", "times"):
        pieces = [getattr(p, name) for p in parts]
        if name == "values":
            columns.append(np.concatenate(pieces))
            continue
        ids = tuple(map(id, pieces))  # the pieces stay alive in ``parts`` meanwhile
        if ids not in joined:
            joined[ids] = np.concatenate(pieces)
            joined[ids].flags.writeable = False  # shared, like the pieces
        columns.append(joined[ids])
    iterations, epochs, values, times = columns
    return SeriesChunk(first.key, first.phase, iterations, epochs, values, times)


def metric_batches(
    client_id: str,
    seq: itertools.count,
    chunks: Iterable[SeriesChunk],
    limit: int,
    max_chunks: int = MAX_BATCH_CHUNKS,
) -> list[MetricBatch]:
    """Group series chunks into batches of at most ``limit`` points and ``max_chunks`` chunks,
    each batch filled before the next is started (a series that does not fit is split, its
    rest opening the next batch: fewer requests, each about as cheap); empty chunks are left
    out. Each series' pieces stay in order, in batches of rising ``seq``."""
    if limit < 1:
        raise ValueError(f"a batch holds at least one point, not {limit}")
    batches: list[MetricBatch] = []
    current: list[SeriesChunk] = []
    size = 0
    for chunk in chunks:
        n, start = len(chunk), 0
        while start < n:
            if size == limit or len(current) == max_chunks:
                batches.append(MetricBatch(client_id, next(seq), tuple(current)))
                current, size = [], 0
            stop = min(n, start + limit - size)
            part = chunk if start == 0 and stop == n else _slice(chunk, start, stop)
            current.append(part)
            size += stop - start
            start = stop
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


def size_of(batch: Any) -> tuple[int, str]:
    """How many points or log lines a batch holds (what a drop of it loses)."""
    if isinstance(batch, LogBatch):
        return len(batch.lines), "lines"
    if batch is None:  # a weights link
        return 0, "points"
    return batch.point_count, "points"


def points_of(calls: Sequence[Call]) -> int:
    """How many points the calls hold (a list other threads append to is read at once)."""
    calls = calls[:]
    return sum(map(len, calls)) - VALUES_AT * len(calls)


def take(items: list) -> list:
    """Take every item of a list other threads append to without a lock.

    The list is never swapped: the first ``n`` items are copied and then deleted, each one atomic
    step (under the GIL), so an item appended in between stays for the next take.
    """
    n = len(items)
    taken = items[:n]
    del items[:n]
    return taken

"""Buffered calls to columnar chunks and batches: every point once, each series in call order."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.core.types import SeriesChunk
from mltrail.sdk.buffer import (
    RUN_CALLS_AT_LEAST,
    _groups,
    merge_series,
    metric_batches,
    record,
    series_chunks,
)


def _calls() -> list:
    calls = []
    for i in range(30):
        values = {"loss": float(i)}
        if i % 3 == 0:
            values["lr"] = i / 100  # a key logged on some calls only, first or second
            values = dict(reversed(values.items())) if i % 2 else values
        calls.append(record("train", i, i // 10, 1000.0 + i, values))
        if i % 7 == 6:
            calls.append(record("validation", i, i // 10, 2000.0 + i, {"loss": -float(i)}))
    calls.append(record("train", 30, 3, 1030.0, {}))  # an empty call adds nothing
    return calls


def test_series_chunks_of_one_key_set_share_the_calls_columns_read_only():
    calls = [
        record("train", i, -1, 100.0 + i, {"loss": float(i), "acc": -float(i)}) for i in range(5)
    ]
    loss, acc = series_chunks(calls)
    assert (loss.key, acc.key) == ("loss", "acc")
    assert loss.iterations.tolist() == acc.iterations.tolist() == list(range(5))
    assert loss.times.tolist() == [100.0 + i for i in range(5)]
    assert acc.values.tolist() == [-float(i) for i in range(5)]
    for column in (loss.iterations, loss.epochs, loss.times):
        assert not column.flags.writeable  # shared by both series: nobody may change it
    assert np.shares_memory(loss.iterations, acc.iterations)


def test_series_chunks_keep_call_order_across_different_key_sets():
    chunks = {(c.key, c.phase): c for c in series_chunks(_calls())}
    assert sorted(chunks) == [("loss", "train"), ("loss", "validation"), ("lr", "train")]
    loss = chunks[("loss", "train")]
    assert loss.iterations.tolist() == list(range(30))
    assert loss.values.tolist() == [float(i) for i in range(30)]
    assert loss.epochs.tolist() == [i // 10 for i in range(30)]
    assert loss.times.tolist() == [1000.0 + i for i in range(30)]
    lr = chunks[("lr", "train")]
    assert lr.iterations.tolist() == list(range(0, 30, 3))
    assert lr.values.tolist() == [i / 100 for i in range(0, 30, 3)]
    val = chunks[("loss", "validation")]
    assert val.iterations.tolist() == [6, 13, 20, 27]
    assert val.values.tolist() == [-6.0, -13.0, -20.0, -27.0]
    assert val.times.tolist() == [2006.0, 2013.0, 2020.0, 2027.0]


def test_series_chunks_of_threads_taking_turns_keep_each_threads_points():
    # first, middle and last calls from thread a, thread b's in between: every call is
    # looked at, not only those three
    turns = [0, 1, 1, 0, 1, 0, 0]
    calls = [record("train", i, -1, float(i), {f"t{t}_loss": float(i), f"t{t}_acc": -float(i)})
             for i, t in enumerate(turns)]  # fmt: skip
    chunks = {c.key: c for c in series_chunks(calls)}
    assert sorted(chunks) == ["t0_acc", "t0_loss", "t1_acc", "t1_loss"]
    assert chunks["t0_loss"].iterations.tolist() == [0, 3, 5, 6]
    assert chunks["t0_acc"].values.tolist() == [-0.0, -3.0, -5.0, -6.0]
    assert chunks["t1_loss"].values.tolist() == chunks["t1_loss"].times.tolist() == [1.0, 2.0, 4.0]


def _groups_call_by_call(calls: list) -> dict:
    groups: dict = {}
    for index, call in enumerate(calls):
        groups.setdefault((call[0], call[4]), []).append(index)
    return groups


def test_series_chunks_of_threads_logging_in_runs_keep_each_series_in_call_order():
    # threads take turns by switch interval, each call site's keys one tuple: runs of calls
    # grouped by identity. A run of equal keys in another tuple (a call site's own) and a
    # run of another phase are grouped by equality, each series still in call order
    keys = {t: (f"t{t}_loss", "shared") for t in range(3)}
    turns = [0] * 20 + [1] * 30 + [0] * 10 + [2] * 25 + [1] * 15 + [0] * 12
    calls = [("train", i, -1, float(i), keys[t], float(i), -float(i)) for i, t in enumerate(turns)]
    equal = tuple(["t0_loss", "shared"])  # equal to keys[0], another tuple
    calls[100:112] = [
        ("train", i, -1, float(i), equal, float(i), -float(i)) for i in range(100, 112)
    ]
    calls += [("validation", i, -1, float(i), keys[1], float(i), 0.5) for i in range(112, 130)]
    by_runs = {k: [i for run in v for i in run] for k, v in _groups(calls).items()}  # ranges
    assert by_runs == _groups_call_by_call(calls)  # grouped by runs, alike
    chunks = {(c.key, c.phase): c for c in series_chunks(calls)}
    for t in range(3):
        want = [i for i, who in enumerate(turns) if who == t]
        loss = chunks[(f"t{t}_loss", "train")]
        assert loss.iterations.tolist() == loss.values.tolist() == want, t
        assert loss.times.tolist() == [float(i) for i in want], t
    shared = chunks[("shared", "train")]
    assert shared.iterations.tolist() == list(range(112))  # every thread's, in call order
    assert shared.values.tolist() == [-float(i) for i in range(112)]
    assert chunks[("t1_loss", "validation")].iterations.tolist() == list(range(112, 130))
    assert chunks[("shared", "validation")].values.tolist() == [0.5] * 18
    assert sum(map(len, chunks.values())) == 2 * len(calls)


def test_metric_batches_fill_each_batch_splitting_series_and_number_batches():
    calls = [record("train", i, -1, float(i), {"a": float(i), "b": -float(i)}) for i in range(25)]
    batches = metric_batches("c", itertools.count(7), series_chunks(calls), 10)
    assert [b.seq for b in batches] == [7, 8, 9, 10, 11]  # every batch full but the last
    assert [[(c.key, len(c)) for c in b.chunks] for b in batches] == [
        [("a", 10)],
        [("a", 10)],
        [("a", 5), ("b", 5)],
        [("b", 10)],
        [("b", 10)],
    ]
    got: dict[str, list[int]] = {"a": [], "b": []}
    for batch in batches:
        for chunk in batch.chunks:
            got[chunk.key] += chunk.iterations.tolist()
    assert got == {"a": list(range(25)), "b": list(range(25))}
    assert series_chunks([]) == []


def test_metric_batches_never_exceed_the_chunk_cap_and_leave_empty_chunks_out():
    from mltrail.core.types import MAX_BATCH_CHUNKS
    from support.factories import chunk

    keys = 2 * MAX_BATCH_CHUNKS + 1  # one call logging that many keys: one point per series
    chunks = [chunk(f"m{i}", [0], [float(i)]) for i in range(keys)]
    chunks.insert(5, chunk("empty", [], []))
    batches = metric_batches("c", itertools.count(3), chunks, 50_000)
    assert [len(b.chunks) for b in batches] == [MAX_BATCH_CHUNKS, MAX_BATCH_CHUNKS, 1]
    assert [b.seq for b in batches] == [3, 4, 5]
    sent = [c.key for b in batches for c in b.chunks]
    assert sent == [f"m{i}" for i in range(keys)]  # every series once, in order, no empty one


def _piece(
    key: str, iterations: list[int], values: list[float], phase: str = "train"
) -> SeriesChunk:
    its = np.array(iterations, dtype=np.int64)
    return SeriesChunk(key, phase, its, its // 10, np.array(values), its * 0.5 + 1000.0)


def test_merge_series_joins_each_series_pieces_in_order_bit_exact():
    nan = np.frombuffer(np.array([0x7FF8_0000_DEAD_BEEF], dtype=np.uint64).tobytes(), np.float64)
    first = _piece("a", [0, 1], [-0.0, 1.5])
    pieces = [
        first,
        _piece("b", [0], [2.0]),
        _piece("a", [], []),  # an empty piece adds nothing
        _piece("a", [2, 3], [float(nan[0]), 0.1 + 0.2]),
        _piece("a", [1], [7.0], phase="validation"),
        _piece("a", [9, 4], [3.0, 4.0]),  # logged out of order: kept as logged
    ]
    merged = merge_series(pieces)
    assert [(c.key, c.phase) for c in merged] == [("a", "train"), ("b", "train"),
                                                  ("a", "validation")]  # fmt: skip
    a = merged[0]
    assert a.iterations.tolist() == [0, 1, 2, 3, 9, 4]
    assert a.epochs.tolist() == [0, 0, 0, 0, 0, 0]
    assert a.times.tolist() == [1000.0, 1000.5, 1001.0, 1001.5, 1004.5, 1002.0]
    want = np.concatenate([first.values, nan, [0.1 + 0.2, 3.0, 4.0]])
    assert a.values.view(np.uint64).tolist() == want.view(np.uint64).tolist()
    assert merged[1] is pieces[1]  # a series in one piece is passed on as it is
    assert merge_series([]) == []


def test_series_chunks_tell_keys_logged_in_another_order_from_the_same_keys():
    calls = [record("train", i, -1, float(i), {"a": float(i), "b": -float(i)}) for i in range(6)]
    same = {c.key: c.values.tolist() for c in series_chunks(calls)}
    assert same == {"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "b": [-0.0, -1.0, -2.0, -3.0, -4.0, -5.0]}
    calls[3] = record("train", 3, -1, 3.0, {"b": -3.0, "a": 3.0})  # same keys, the other way round
    calls[4] = record("train", 4, -1, 4.0, {"a": 4.0})  # fewer keys...
    calls.insert(
        5, record("train", 9, -1, 9.0, {"b": -9.0, "c": 9.0})
    )  # ...made up by the next call
    chunks = {c.key: c for c in series_chunks(calls)}
    assert chunks["a"].values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert chunks["b"].values.tolist() == [-0.0, -1.0, -2.0, -3.0, -9.0, -5.0]
    assert chunks["b"].iterations.tolist() == [0, 1, 2, 3, 9, 5]
    assert chunks["c"].iterations.tolist() == [9]


def test_merged_series_of_compactions_share_their_joined_columns():
    calls = [record("train", i, 0, 50.0 + i, {"loss": float(i), "acc": 1.0 - i}) for i in range(6)]
    pieces = series_chunks(calls[:4]) + series_chunks(calls[4:])  # two compactions
    loss, acc = merge_series(pieces)
    assert (loss.key, acc.key) == ("loss", "acc")
    assert loss.iterations.tolist() == acc.iterations.tolist() == list(range(6))
    assert loss.times.tolist() == [50.0 + i for i in range(6)]
    assert loss.values.tolist() == [float(i) for i in range(6)]
    assert acc.values.tolist() == [1.0 - i for i in range(6)]
    assert loss.iterations is acc.iterations and not loss.iterations.flags.writeable
    assert not np.shares_memory(loss.values, acc.values)


_KEY_SETS = [("loss",), ("loss", "lr"), ("lr", "loss"), ("acc", "loss", "lr"), ()]
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, math.nan, 5e-324]),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.floats(width=32).map(np.float32),
)


@st.composite
def _runs_of_calls(draw: st.DrawFn) -> list:
    """Calls in runs around the grouping's switch (RUN_CALLS_AT_LEAST calls a run): each run
    one key set, either one tuple for the run (a call site's) or a tuple per call (equal keys,
    another object), in one of two phases spelt by one object or rebuilt; iterations go back."""
    calls, iteration = [], draw(st.integers(-3, 3))
    for _ in range(draw(st.integers(1, 10))):
        keys = draw(st.sampled_from(_KEY_SETS))
        phase, rebuilt = draw(st.sampled_from(["train", "validation"])), draw(st.booleans())
        for _ in range(draw(st.integers(1, 2 * RUN_CALLS_AT_LEAST + 1))):
            own = tuple(list(keys)) if rebuilt else keys
            iteration += draw(st.integers(-2, 3))
            values = tuple(draw(_VALUES) for _ in own)
            at = draw(st.floats(0, 2e9))
            calls.append(
                ("".join(phase) if rebuilt else phase, iteration, iteration // 5, at, own, *values)
            )
    return calls


def _points_by_series(chunks: list[SeriesChunk]) -> dict[tuple[str, str], list[tuple]]:
    points: dict[tuple[str, str], list[tuple]] = {}
    for c in chunks:
        bits = c.values.view(np.int64).tolist()
        columns = zip(c.iterations.tolist(), c.epochs.tolist(), bits, c.times.tolist(), strict=True)
        points.setdefault((c.phase, c.key), []).extend(columns)
    return points


@settings(max_examples=150, deadline=None)
@given(_runs_of_calls(), st.integers(1, 40))
def test_every_call_mix_keeps_each_series_points_bit_exact_in_call_order(calls, limit):
    """Against a model of one step a call: whatever the runs of key sets (shared or equal
    tuples, either side of the switch to grouping by runs), every point once, bit for bit, in
    call order, through series_chunks, merge_series of two drains and metric_batches."""
    want: dict[tuple[str, str], list[tuple]] = {}
    for phase, iteration, epoch, at, keys, *values in calls:
        for key, value in zip(keys, values, strict=True):
            bits = int(np.float64(value).view(np.int64))
            want.setdefault((phase, key), []).append((iteration, epoch, bits, at))
    assert _points_by_series(series_chunks(calls)) == want
    half = len(calls) // 2
    merged = merge_series([*series_chunks(calls[:half]), *series_chunks(calls[half:])])
    batches = metric_batches("c", itertools.count(), merged, limit)
    assert _points_by_series([c for b in batches for c in b.chunks]) == want

"""Buffered calls to columnar chunks and batches: every point once, each series in call order."""

from __future__ import annotations

import itertools

from mltrail.sdk.buffer import metric_batches, series_chunks


def _calls() -> list:
    calls = []
    for i in range(30):
        values = {"loss": float(i)}
        if i % 3 == 0:
            values["lr"] = i / 100  # a key logged on some calls only, first or second
            values = dict(reversed(values.items())) if i % 2 else values
        calls.append(("train", i, i // 10, 1000.0 + i, values))
        if i % 7 == 6:
            calls.append(("validation", i, i // 10, 2000.0 + i, {"loss": -float(i)}))
    calls.append(("train", 30, 3, 1030.0, {}))  # an empty call adds nothing
    return calls


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


def test_metric_batches_split_long_series_and_number_batches():
    calls = [("train", i, -1, float(i), {"a": float(i), "b": -float(i)}) for i in range(25)]
    batches = metric_batches("c", itertools.count(7), series_chunks(calls), 10)
    assert [b.seq for b in batches] == [7, 8, 9, 10, 11, 12]  # a: 10+10+5, b: 10+10+5
    assert all(sum(len(c) for c in b.chunks) <= 10 for b in batches)
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

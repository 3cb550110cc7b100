"""The packed form of a series' unsealed rollup buckets (rollup_tails): a blob decodes to the
table it was made of, an append that changes only the last bucket of each level keeps the
packed part of the others as stored, and a blob of format 1 (migration 0025 before format 2)
still reads."""

from __future__ import annotations

import struct

import numpy as np

from mltrail.store.sql import rollup_tail_codec, rollup_tails
from mltrail.store.sql.rollup_tails import KEYS, WIDTH


def _table(rng: np.random.Generator, levels: dict[int, int]) -> np.ndarray:
    columns = []
    for level, count in levels.items():
        part = rng.integers(-(2**40), 2**40, size=(KEYS + WIDTH, count), dtype=np.int64)
        part[0], part[1] = level, np.arange(count) + 3
        part[5] = 0  # a column zero in every bucket
        columns.append(part)
    return np.concatenate(columns, axis=1)


def test_blobs_decode_to_their_tables() -> None:
    rng = np.random.default_rng(7)
    for levels in ({1: 1}, {1: 5, 2: 1}, {1: 9, 2: 3, 3: 1}):
        table = _table(rng, levels)
        np.testing.assert_array_equal(rollup_tails.decode(rollup_tails.encode(table)), table)
    empty = rollup_tails.decode(rollup_tails.encode(rollup_tails.EMPTY))
    assert empty.shape == rollup_tails.EMPTY.shape


def test_a_changed_last_bucket_keeps_the_packed_part() -> None:
    rng = np.random.default_rng(8)
    tables = [_table(rng, {1: 6, 2: 2}), _table(rng, {1: 3})]
    bounds = np.array([0, 8, 11])
    blobs = rollup_tails.encode_tails(np.concatenate(tables, axis=1), bounds, [None, None])
    stored = [rollup_tails.decode_tail(b) for b in blobs]
    changed = [t.copy() for t in tables]
    changed[0][4, 5] += 1  # the last bucket of level 1
    changed[1][4, 0] += 1  # not a last bucket: packed again
    again = rollup_tails.encode_tails(np.concatenate(changed, axis=1), bounds, stored)
    assert stored[0].packed and again[0].endswith(stored[0].packed)
    assert stored[1].packed and not again[1].endswith(stored[1].packed)
    for blob, want in zip(again, changed, strict=True):
        np.testing.assert_array_equal(rollup_tails.decode(blob), want)


def test_a_blob_of_format_1_reads() -> None:
    table = _table(np.random.default_rng(9), {1: 4, 2: 1})
    body = rollup_tail_codec.pack_many(table, np.array([0, table.shape[1]]))[0]
    blob = b"\x01" + struct.pack("<I", table.shape[1]) + body
    np.testing.assert_array_equal(rollup_tails.decode(blob), table)

"""The physical floor of ingest: packing the points and inserting the packed bytes into SQLite.

Whatever a tracker does around them (HTTP, JSON, validation, rollups, bookkeeping), storing
points costs at least this: the same random-walk points as the ingest row, cut into the same
batches as the SDK sends (``batch_points`` points, one chunk per series), packed by mltrail's own
chunk encoder, inserted as one row per chunk into a fresh SQLite file with the server's settings
(WAL, ``synchronous=NORMAL``) and committed once per batch. Measured in the same run as the
ingest it judges, in a process of its own.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.series_data import key_names, random_walk

SCHEMA = """CREATE TABLE chunks (id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,
    start INTEGER NOT NULL, count INTEGER NOT NULL, first_iteration INTEGER NOT NULL,
    last_iteration INTEGER NOT NULL, data BLOB NOT NULL)"""
INSERT = "INSERT INTO chunks (series_id, start, count, first_iteration, last_iteration, data) \
VALUES (?, ?, ?, ?, ?, ?)"


def physical_floor(path: Path, keys: int, iterations: int, batch_points: int) -> dict[str, Any]:
    """Pack and insert keys x iterations points into a new SQLite file at ``path``.

    Returns:
        ``seconds`` (packing and inserting, commits included), ``points_per_s`` and the
        ``bytes`` of the packed chunks.
    """
    from mltrail.core.chunk_codec import encode_chunk
    from mltrail.core.types import SeriesChunk

    values = random_walk(keys, iterations)
    iterations_column = np.arange(iterations, dtype=np.int64)
    epochs = np.full(iterations, -1, dtype=np.int64)
    times = time.time() + iterations_column * 0.01
    per_batch = max(1, batch_points // keys)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)
    packed = 0
    started = time.perf_counter()
    for start in range(0, iterations, per_batch):
        cut = slice(start, min(start + per_batch, iterations))
        rows = []
        for k, name in enumerate(key_names(keys)):
            chunk = SeriesChunk(name, "train", iterations_column[cut], epochs[cut],
                                values[cut, k], times[cut])  # fmt: skip
            data = encode_chunk(chunk)
            packed += len(data)
            rows.append((k, start, len(chunk), cut.start, cut.stop - 1, data))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    points = keys * iterations
    return {"points": points, "seconds": seconds, "points_per_s": points / seconds,
            "bytes": packed}  # fmt: skip

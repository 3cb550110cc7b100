"""Iterations and epochs past 2^53 (a double's whole numbers) read back exactly, downsampled
or not: every returned point is a logged one, and a chart keeps the logged min and max."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np

from mltrail.core.types import MetricBatch, Series, SeriesQuery
from mltrail.store.sql import SqlStore
from support.factories import chunk
from support.inprocess import app_client, ok_json
from support.servers import ServerProcess

N = 200_000
ZOOM = (N // 3, N // 3 + 60_000)  # indexes of the points a zoomed read's range starts and ends at
STARTS = {"far": 2**62 + 1, "near": 2**53 + 1}  # iterations start + 2k (far) or start + k


def _logged(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    step = 2 if key == "far" else 1
    it = STARTS[key] + step * np.arange(N, dtype=np.int64)
    epochs = 2**31 - 1 - N + np.arange(N, dtype=np.int64) // 7  # up to MAX_EPOCH
    values = np.random.default_rng(len(key)).normal(size=N)
    values[ZOOM[0] + 30_000 : ZOOM[0] + 30_002] = (-100.0, 100.0)  # the min and max, in zooms too
    return it, epochs, values


def _check(read: Series, key: str, lo: int | None = None, hi: int | None = None) -> None:
    it, ep, v = _logged(key)
    keep = np.ones(N, bool) if lo is None else (it >= lo) & (it <= hi)
    it, ep, v = it[keep], ep[keep], v[keep]
    at = np.searchsorted(it, read.iterations)
    assert read.iterations.dtype == np.int64 and read.epochs.dtype == np.int64
    assert np.all(at < len(it)), "an iteration past the last logged one"
    missing = read.iterations[it[at] != read.iterations]
    assert not len(missing), f"iterations never logged: {missing[:3].tolist()}"
    np.testing.assert_array_equal(read.epochs, ep[at])
    np.testing.assert_array_equal(read.values, v[at])
    assert -100.0 in read.values and 100.0 in read.values
    if lo is None:  # a zoom's first and last may be in buckets straddling its range: not kept
        assert read.iterations[0] == it[0] and read.iterations[-1] == it[-1]


def test_downsampled_reads_return_only_logged_points(migrated_db_url: str) -> None:
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("big")
        store.create_experiment(p.id)
        for seq, key in enumerate(STARTS):
            it, ep, v = _logged(key)
            store.append_points(p.id, 1, MetricBatch("c", seq, (chunk(key, it, v, epochs=ep),)))
        for key in STARTS:
            full = store.read_series(p.id, 1, key, "train")
            np.testing.assert_array_equal(full.iterations, _logged(key)[0])
            np.testing.assert_array_equal(full.epochs, _logged(key)[1])
            it = _logged(key)[0]
            zoom = (int(it[ZOOM[0]]), int(it[ZOOM[1]]))
            for max_points in (50, 1_000, 20_000):
                _check(store.read_series(p.id, 1, key, "train", max_points=max_points), key)
                read = store.read_series(
                    p.id, 1, key, "train", max_points=max_points, start=zoom[0], end=zoom[1]
                )
                _check(read, key, *zoom)
            query = SeriesQuery(p.id, 1, key, "train")
            (answer,) = store.read_series_batch([query], max_points=1_000)
            assert answer.series is not None
            _check(answer.series, key)
        with app_client(store) as client:  # the JSON answer keeps them exact too
            path = f"/api/v1/projects/{p.id}/experiments/1/series/read"
            body = ok_json(client.get(path, params={"key": "far", "max_points": 1_000}))
            served = store.read_series(p.id, 1, "far", "train", max_points=1_000)
            assert body["iterations"] == served.iterations.tolist()
            assert body["epochs"] == served.epochs.tolist()
    finally:
        store.close()


def test_a_real_server_answers_only_logged_iterations(
    server_factory: Callable[..., ServerProcess], migrated_sqlite_url: str
) -> None:
    store = SqlStore.open(migrated_sqlite_url)
    try:
        p = store.create_project("big")
        store.create_experiment(p.id)
        it, ep, v = _logged("far")
        store.append_points(p.id, 1, MetricBatch("c", 0, (chunk("far", it, v, epochs=ep),)))
    finally:
        store.close()
    server = server_factory(migrated_sqlite_url)
    path = f"{server.url}/api/v1/projects/{p.id}/experiments/1/series/read"
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    for params in ({"max_points": 1_000}, {"max_points": 50, "start": int(it[ZOOM[0]])}):
        answer = httpx.get(path, params={"key": "far", **params}, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["downsampled"] and body["iterations"]
        logged = dict(zip(it.tolist(), zip(ep.tolist(), v.tolist(), strict=True), strict=True))
        got = zip(body["iterations"], body["epochs"], body["values"], strict=True)
        assert [logged.get(i) for i, _, _ in got] == list(
            zip(body["epochs"], body["values"], strict=True)
        )
        assert 100.0 in body["values"] and -100.0 in body["values"]

"""A packed series answer written column by column into its body is byte for byte what
orjson writes for :func:`series_to_packed`, at every length around a piece's boundary, with
and without times, for keys that need escaping; and it reads back bit-exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mltrail.core.series_codec import (
    PIECE_POINTS,
    packed_series_body,
    series_from_packed,
    series_to_packed,
)
from mltrail.core.types import Series
from mltrail.core.wire import dump_json

LENGTHS = [0, 1, 2, 3, 4, PIECE_POINTS - 1, PIECE_POINTS, PIECE_POINTS + 1, 2 * PIECE_POINTS + 2]


def _series(n: int, times: bool) -> Series:
    rng = np.random.default_rng(n)
    values = rng.normal(size=n)
    values[::7] = np.nan  # every bit pattern travels, NaN too
    return Series(
        key='loss "val"/é\\',
        phase="train",
        iterations=np.arange(n, dtype=np.int64) * 3 - 5,
        epochs=np.full(n, -1, dtype=np.int64),
        values=values,
        total=n + 10,
        downsampled=False,
        times=rng.uniform(1.7e9, 1.8e9, size=n) if times else None,
    )


@pytest.mark.parametrize("times", [False, True])
@pytest.mark.parametrize("n", LENGTHS)
def test_the_body_is_what_orjson_writes_for_the_packed_series(n: int, times: bool) -> None:
    series = _series(n, times)
    body = packed_series_body(series)
    assert bytes(body) == dump_json(series_to_packed(series))
    back = series_from_packed(json.loads(body))
    assert back.iterations.tobytes() == series.iterations.tobytes()
    assert back.values.tobytes() == series.values.tobytes()
    assert (back.times is None) == (series.times is None)

"""Metric points' parse constructors (core/points.py): errors naming the field, values kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mltrail.core import points
from mltrail.core.errors import ValidationError
from mltrail.core.types import SeriesChunk


@pytest.mark.parametrize(
    ("chunk_kwargs", "field"),
    [
        ({"key": ""}, "key"),
        ({"key": "x" * 251}, "key"),
        ({"phase": "eval"}, "phase"),
        ({"iterations": np.array([-1])}, "loss.iteration"),
        ({"values": np.array([1.0, 2.0])}, "loss.values"),
    ],
)
def test_series_chunk_errors_name_the_field(chunk_kwargs, field):
    base = {
        "key": "loss",
        "phase": "train",
        "iterations": np.array([0]),
        "epochs": np.array([-1]),
        "values": np.array([1.0]),
        "times": np.array([1.0]),
    }
    with pytest.raises(ValidationError) as err:
        points.series_chunk(SeriesChunk(**(base | chunk_kwargs)))
    assert err.value.field == field


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_series_chunk_keeps_non_finite_values(values):
    n = len(values)
    chunk = points.series_chunk(
        SeriesChunk("k", "train", np.arange(n), np.full(n, -1), np.array(values), np.ones(n))
    )
    assert np.array_equal(chunk.values, np.array(values), equal_nan=True)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({}, None),
        ({"iterations": np.array([3, -1])}, "k2.iteration"),
        ({"epochs": np.array([0, -2])}, "k2.epoch"),
        ({"epochs": np.array([0, 2**31])}, "k2.epoch"),
        ({"times": np.array([1.7e9, np.nan])}, "k2.time"),
        ({"times": np.array([1.7e9, -2e13])}, "k2.time"),
        ({"values": np.array([1.0])}, "k2.values"),
        ({"key": " "}, "key"),
    ],
)
def test_a_batch_is_checked_at_once_as_chunk_by_chunk(bad, field):
    """series_chunks checks a batch's bounds over all its points at once: the chunks it
    returns are series_chunk's, and a bad chunk gets series_chunk's error naming it."""
    chunks = [
        SeriesChunk(f"k{i}", "train", np.array([i, i + 1]), np.array([-1, 0]),
                    np.array([np.nan, -0.0]), np.array([1.7e9, 1.7e9 + 1]))
        for i in range(6)
    ]  # fmt: skip
    chunks[2] = SeriesChunk(**({**chunks[2].__dict__, "key": "k2"} | bad))
    if field is None:
        got, want = points.series_chunks(chunks), [points.series_chunk(c) for c in chunks]
        assert [(c.key, c.phase) for c in got] == [(c.key, c.phase) for c in want]
        for a, b in zip(got, want, strict=True):
            for name in ("iterations", "epochs", "values", "times"):
                x, y = getattr(a, name), getattr(b, name)
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
        return
    with pytest.raises(ValidationError) as raised:
        points.series_chunks(chunks)
    assert raised.value.field == field

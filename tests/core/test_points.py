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

"""The wire encoding round-trips exactly; the weights hash matches its documented definition."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mltrail.core import wire
from mltrail.core.errors import ValidationError
from mltrail.core.weights import combine_hashes, weights_hash


@given(hnp.arrays(np.float64, st.integers(0, 50)))
def test_packed_float_arrays_round_trip_bit_exactly(array):
    back = wire.unpack_array(wire.pack_array(array, "<f8"), "<f8", len(array), "values")
    assert back.tobytes() == array.astype("<f8").tobytes()


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True)))
def test_tagged_floats_round_trip(values):
    back = wire.from_wire(wire.floats_to_wire(np.array(values, dtype=np.float64)))
    assert np.array_equal(
        np.array(back, dtype=np.float64), np.array(values, dtype=np.float64), equal_nan=True
    )


def test_unpack_rejects_bad_base64_and_wrong_length():
    with pytest.raises(ValidationError):
        wire.unpack_array("!!!", "<f8", 1, "values")
    with pytest.raises(ValidationError) as err:
        wire.unpack_array(wire.pack_array(np.zeros(2), "<f8"), "<f8", 3, "values")
    assert err.value.field == "values"


def test_to_wire_tags_non_finite_floats_only():
    assert wire.to_wire({"a": [1.0, math.inf, "NaN"]}) == {
        "a": [1.0, {"$float": "Infinity"}, "NaN"]
    }


def test_contract_example_hash():
    assert combine_hashes(["abc", "123", "def"]) == hashlib.sha1(b"abc123def").hexdigest()


def test_weights_hash_of_numpy_layers_matches_the_definition():
    layers = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, dtype=np.float64)]
    expected = hashlib.sha1(
        "".join(
            hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest() for a in layers
        ).encode()
    ).hexdigest()
    assert weights_hash(layers) == expected
    assert weights_hash({"w": layers[0], "b": layers[1]}) == expected
    # a transposed view hashes its C-contiguous bytes, so it differs from the original
    assert weights_hash([layers[0].T, layers[1]]) != expected


def test_weights_hash_rejects_empty_and_unknown():
    with pytest.raises(ValidationError):
        weights_hash([])
    with pytest.raises(ValidationError):
        weights_hash(object())

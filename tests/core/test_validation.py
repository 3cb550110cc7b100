"""Validators: clear errors naming the field, normalised values, properties that must hold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mltrail.core import validation as v
from mltrail.core.errors import ValidationError

scalars = st.one_of(st.text(max_size=50), st.integers(), st.floats(allow_nan=True), st.booleans())
keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60
).filter(str.strip)


@given(
    st.dictionaries(
        keys.filter(lambda k: not k.startswith("ex_")), scalars, min_size=1, max_size=10
    )
)
def test_ex_metrics_round_trip_through_json_text_with_types_and_prefix(metrics):
    parsed = v.ex_metrics(json.dumps(metrics))
    assert set(parsed) == {"ex_" + k for k in metrics}
    for key, value in metrics.items():
        got = parsed["ex_" + key]
        assert type(got) is type(value)
        assert got == value or (isinstance(value, float) and math.isnan(value) and math.isnan(got))


@given(
    st.one_of(
        st.none(),
        st.lists(st.integers()),
        st.dictionaries(keys, st.lists(st.integers(), min_size=1), min_size=1),
    )
)
def test_ex_metrics_rejects_everything_but_objects_of_scalars(value):
    with pytest.raises(ValidationError) as err:
        v.ex_metrics(value)
    assert err.value.field.startswith("metrics")


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30),
    st.integers(min_value=1, max_value=4),
)
def test_chart_accepts_any_rectangular_y_and_keeps_values(values, width):
    xs = list(range(len(values)))
    rows = [[y] * width for y in values] if width > 1 else values
    spec = v.chart(
        "c",
        chart_x=xs,
        chart_y=rows,
        chart_y_name=[f"l{i}" for i in range(width)] if width > 1 else "Y",
    )
    assert len(spec.y) == len(xs) and all(len(r) == width for r in spec.y)
    assert np.array_equal(np.array([r[0] for r in spec.y]), np.array(values), equal_nan=True)


@given(
    st.lists(st.integers(), min_size=1, max_size=10),
    st.lists(st.integers(), min_size=1, max_size=10),
)
def test_chart_rejects_length_mismatch(xs, ys):
    if len(xs) == len(ys):
        return
    with pytest.raises(ValidationError) as err:
        v.chart("c", chart_x=xs, chart_y=ys)
    assert err.value.field == "chart_y"


def test_chart_y_name_string_for_multi_line_is_numbered():
    spec = v.chart("c", chart_x=[1, 2], chart_y=[[1, 2], [3, 4]], chart_y_name="loss")
    assert spec.y_names == ("loss 1", "loss 2")


def test_chart_id_is_sha256_of_stripped_lower_name():
    import hashlib

    assert v.chart_id("  My Chart ") == hashlib.sha256(b"my chart").hexdigest()


@given(st.text(max_size=200_000))
def test_log_messages_are_bounded_and_say_when_truncated(message):
    out = v.log_message(message)
    if len(message) <= v.MAX_LOG_MESSAGE_LEN:
        assert out == message
    else:
        assert out.startswith(message[: v.MAX_LOG_MESSAGE_LEN]) and out.endswith("characters]")


@pytest.mark.parametrize("value", [True, "1", None, [1]])
def test_metric_value_rejects_non_numbers(value):
    with pytest.raises(ValidationError):
        v.metric_value(value, "loss")

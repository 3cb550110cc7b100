"""JSON parsing on the list paths: orjson where it is exact, the standard library elsewhere."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.core import wire
from mltrail.core.codec import parse_json
from mltrail.store.sql.access import dump_json, load_json, load_json_all

BIG = 2**64 + 1
NEG_BIG = -(2**63) - 1


@pytest.mark.parametrize(
    "value",
    [
        {"a": BIG},
        {"a": NEG_BIG, "b": [1, 2.5]},
        {"lr": 1e-3, "n": 2**63 - 1, "m": -(2**63)},
        {"s": "\ud800"},
        {"x": 0.1 + 0.2, "y": -0.0, "z": 1.7976931348623157e308},
        [BIG] * 1000,  # long text: the translate scan
        {"pad": "x" * 5000, "tail": BIG},
        {"pad": "x" * 5000, "ok": 12},
    ],
)
def test_parse_json_keeps_values_exact(value: object) -> None:
    text = dump_json(value, "hyperparameters")
    parsed = parse_json(text)
    assert parsed == value
    assert json.dumps(parsed) == json.dumps(value)  # int stays int, float stays float
    assert parse_json(text.encode()) == value


def test_parse_json_reads_non_finite_tokens() -> None:
    parsed = parse_json('{"a": NaN, "b": Infinity, "c": -Infinity}')
    assert math.isnan(parsed["a"])
    assert parsed["b"] == math.inf and parsed["c"] == -math.inf


@pytest.mark.parametrize("text", [str(BIG), " " * 4096 + str(BIG), "1" * 19])
def test_parse_json_long_integer_at_either_end(text: str) -> None:
    assert parse_json(text) == int(text)
    assert isinstance(parse_json(text.encode()), int)


def test_load_json_empty_and_none() -> None:
    assert load_json(None, {}) == {}
    assert load_json("{}") == {} and load_json("[]") == []
    assert load_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


@pytest.mark.parametrize(
    "texts",
    [
        ["{}", '{"lr": 0.001, "n": 3}', "[]", '["a", "b"]', "{}"],
        ['{"a": NaN}', "{}", f'{{"b": {BIG}}}', '{"c": -Infinity}'],  # the exact parser, all
        ["{}", "[]", "{}"],
        [],
    ],
)
def test_load_json_all_parses_each_text_as_load_json_does(texts: list[str]) -> None:
    parsed = load_json_all(texts)
    assert json.dumps(parsed) == json.dumps([load_json(t) for t in texts])
    # every empty value is an object of its own: an experiment's dict is not another's
    empties = [v for v in parsed if not v]
    assert len({id(v) for v in empties}) == len(empties)


def test_parse_json_rejects_garbage_like_json_does() -> None:
    with pytest.raises(ValueError):
        parse_json("{not json")


@pytest.mark.parametrize(
    "text",
    [
        '{"v": 0.0016565795211280765}',  # 19 digits after the point: a float
        '{"v": -0.0025475081255511567, "w": 1.5e-0000000000000000005}',
        '{"id": "1-2", "values": [0.00012345678901234567, 2.5]}',
    ],
)
def test_long_fractions_take_the_fast_parser(text: str) -> None:
    assert not wire._may_hold_long_int(text)
    assert not wire._may_hold_long_int(text.encode())
    assert parse_json(text) == json.loads(text)


@pytest.mark.parametrize(
    "text", [f'{{"a": {BIG}}}', f"[1.5,{NEG_BIG}]", f'{{"s": "{BIG}"}}', f"[{-BIG}]"]
)
def test_long_integers_take_the_exact_parser(text: str) -> None:
    assert wire._may_hold_long_int(text)
    assert parse_json(text) == json.loads(text)


# what the scan must find: an integer token of 19 digits or more (after anything but a digit,
# a float's . e E + or a minus sign; a minus sign of its own may lead it)
_LONG_INT_TOKEN = re.compile(rb"(?:^|[^0-9.eE+\-])-?[0-9]{19}")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60) | st.text("0123456789" * 6 + '.eE+- ,[]"a', max_size=80))
def test_long_int_scan_finds_exactly_the_long_integer_tokens(text: str | bytes) -> None:
    raw = text if isinstance(text, bytes) else text.encode()
    assert wire._may_hold_long_int(text) == (_LONG_INT_TOKEN.search(raw) is not None)

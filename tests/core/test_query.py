"""The query grammar: parse/print round trip on random trees, errors naming position and token,
and the Python evaluator's three-valued logic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.core import query as q
from mltrail.core import query_eval, query_text
from mltrail.core.errors import ValidationError

_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12
)
_metric_names = st.one_of(
    st.builds(lambda p, k: f"{p}/{k}", st.sampled_from(["train", "validation", "test"]), _names),
    st.builds(lambda k: f"ex_{k}", _names),
)


@st.composite
def fields(draw: st.DrawFn) -> q.Field:
    kind = draw(st.sampled_from(["metrics", "params", "attributes"]))
    if kind == "attributes":
        return q.Field("attributes", draw(st.sampled_from(q.ATTRIBUTES)))
    if kind == "params":
        return q.Field("params", draw(_names))
    name = draw(_metric_names)
    aggregate = "last" if name.startswith("ex_") else draw(st.sampled_from(["last", "min", "max"]))
    return q.Field("metrics", name, aggregate)


_numbers = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False)
)
_strings = st.text(max_size=10)


def _literal_for(field: q.Field, op: str) -> st.SearchStrategy[q.Value]:
    kind = q._field_kind(field)
    if field.name == "status" and field.namespace == "attributes":
        return st.sampled_from([s for s in q._STATUSES])
    if kind in ("number", "time"):
        return _numbers
    if kind == "text" or op in q.PATTERNS:
        return _strings
    if op in ("=", "!="):
        return st.one_of(_numbers, _strings, st.booleans())
    return st.one_of(_numbers, _strings)


@st.composite
def predicates(draw: st.DrawFn) -> q.Expr:
    field = draw(fields())
    tags = field == q.Field("attributes", "tags")
    numeric = q._field_kind(field) in ("number", "time")
    ops = ["=", "!="] if tags else list(q.COMPARISONS)
    if not numeric:
        ops += list(q.PATTERNS)
    if draw(st.booleans()):
        values = draw(st.lists(_literal_for(field, "="), min_size=1, max_size=3))
        return q.Membership(field, tuple(values), draw(st.booleans()))
    op = draw(st.sampled_from(ops))
    return q.Comparison(field, op, draw(_literal_for(field, op)))


filters = st.recursive(
    predicates(),
    lambda sub: st.one_of(
        st.builds(q.And, sub, sub), st.builds(q.Or, sub, sub), st.builds(q.Not, sub)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(filters)
def test_printed_filter_parses_back_to_the_same_tree(expr: q.Expr) -> None:
    assert q.parse_filter(query_text.to_text(expr)) == expr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(fields(), st.booleans()), max_size=4))
def test_printed_order_parses_back(items: list[tuple[q.Field, bool]]) -> None:
    keys = tuple(q.OrderKey(f, d) for f, d in items if f.name != "tags")
    assert q.parse_order_by(query_text.order_text(keys)) == keys
    assert q.parse_order_by(", ".join(query_text.order_text(keys))) == keys


def test_fields_as_users_write_them() -> None:
    parsed = q.parse_filter(
        "metrics.validation/loss < 0.5 AND metrics.loss.min > 0 and metrics.`my key`.max >= 1"
    )
    assert parsed == q.And(
        q.And(
            q.Comparison(q.Field("metrics", "validation/loss"), "<", 0.5),
            q.Comparison(q.Field("metrics", "train/loss", "min"), ">", 0),
        ),
        q.Comparison(q.Field("metrics", "train/my key", "max"), ">=", 1),
    )
    assert q.parse_filter("params.`batch size` in (32, 64)") == q.Membership(
        q.Field("params", "batch size"), (32, 64)
    )
    assert q.parse_filter("metrics.ex_cost != 'x'") == q.Comparison(
        q.Field("metrics", "ex_cost"), "!=", "x"
    )
    assert q.parse_filter("created >= '2026-01-01T00:00:00+00:00'") == q.Comparison(
        q.Field("attributes", "created"), ">=", 1767225600.0
    )
    assert q.parse_filter("  ") is None


@pytest.mark.parametrize(
    ("text", "position", "token"),
    [
        ("metrics.x <", 11, ""),
        ("foo = 1", 0, "foo"),
        ("status = 'bogus'", 9, "'bogus'"),
        ("name = 1", 7, "1"),
        ("params.x = 1 params.y = 2", 13, "params.y"),
        ("(params.x = 1", 13, ""),
        ("metrics.x like 'a%'", 10, "like"),
        ("tags > 'a'", 5, ">"),
        ("name = 'open", 7, "'open"),
        ("params.x in 1", 12, "1"),
        ("params.x ~ 1", 9, "~"),
    ],
)
def test_bad_filter_names_position_and_token(text: str, position: int, token: str) -> None:
    with pytest.raises(q.QueryError) as caught:
        q.parse_filter(text)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.field == "filter"
    assert (caught.value.position, caught.value.token) == (position, token)
    assert f"at position {position}" in str(caught.value)


def test_bad_order_names_position() -> None:
    with pytest.raises(q.QueryError) as caught:
        q.parse_order_by(["name asc", "metrics.x upward"])
    assert (caught.value.field, caught.value.position, caught.value.token) == (
        "order_by",
        10,
        "upward",
    )
    with pytest.raises(q.QueryError):
        q.parse_order_by("tags")


def test_evaluation_is_three_valued() -> None:
    values = {q.Field("params", "lr"): 0.1, q.Field("params", "opt"): "adam"}
    lookup = values.get
    check = lambda text: query_eval.evaluate(q.parse_filter(text), lookup)  # noqa: E731
    assert check("params.lr > 0.01") is True
    assert check("params.missing > 0.01") is None
    assert check("not params.missing > 0.01") is None
    assert check("params.missing > 0 or params.lr > 0") is True
    assert check("params.missing > 0 and params.lr < 0") is False
    assert check("params.opt > 1") is None  # a string against a number: unknown
    assert check("params.opt like 'ad%'") is True
    assert check("params.opt like 'AD%'") is False
    assert check("params.opt ilike 'AD%'") is True
    assert check("params.opt not in ('sgd')") is True

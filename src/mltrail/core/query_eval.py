"""Evaluating a parsed query (``core/query.py``) in Python, with the stores' semantics.

The reference the database answers are tested against (tests/store/test_search_contract.py),
and what a client holding experiments in memory can filter and sort them with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from mltrail.core.query import And, Comparison, Expr, Field, Membership, Not, Or, Value

Lookup = Callable[[Field], "Value | Sequence[str] | None"]


def evaluate(expr: Expr, lookup: Lookup) -> bool | None:
    """Evaluate a filter in Python with the stores' semantics: ``True``, ``False`` or
    ``None`` (unknown, which does not match).

    Args:
        expr: a parsed filter.
        lookup: a field's value for the experiment at hand: ``None`` when missing, the tags
            as a sequence of strings, times as unix seconds.
    """
    if isinstance(expr, And):
        left, right = evaluate(expr.left, lookup), evaluate(expr.right, lookup)
        return (
            False if left is False or right is False else (None if None in (left, right) else True)
        )
    if isinstance(expr, Or):
        left, right = evaluate(expr.left, lookup), evaluate(expr.right, lookup)
        return True if left is True or right is True else (None if None in (left, right) else False)
    if isinstance(expr, Not):
        inner = evaluate(expr.operand, lookup)
        return None if inner is None else not inner
    value = lookup(expr.field)
    if expr.field == Field("attributes", "tags"):
        return _evaluate_tags(expr, list(value or ()))  # type: ignore[arg-type]
    if isinstance(expr, Membership):
        found = [_compare(value, "=", v) for v in expr.values]
        result = True if True in found else (None if None in found else False)
        return None if result is None else result != expr.negated
    return _compare(value, expr.op, expr.value)


def _evaluate_tags(expr: Comparison | Membership, tags: list[str]) -> bool:
    if isinstance(expr, Membership):
        return any(t in expr.values for t in tags) != expr.negated
    if expr.op in ("=", "!="):
        return (expr.value in tags) == (expr.op == "=")
    negated = expr.op.startswith("not ")
    return any(_compare(t, expr.op.removeprefix("not "), expr.value) for t in tags) != negated


def _compare(value: object, op: str, literal: Value) -> bool | None:
    if not _same_kind(value, literal):
        return None
    if op in ("like", "ilike", "not like", "not ilike"):
        matched = like_regex(str(literal), fold=op.endswith("ilike")).fullmatch(str(value))
        return (matched is not None) != op.startswith("not ")
    a, b = value, literal
    return {
        "=": a == b,
        "!=": a != b,
        "<": a < b,  # type: ignore[operator]
        "<=": a <= b,  # type: ignore[operator]
        ">": a > b,  # type: ignore[operator]
        ">=": a >= b,  # type: ignore[operator]
    }[op]


def _same_kind(value: object, literal: Value) -> bool:
    if value is None:
        return False
    if isinstance(literal, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(literal, bool)
    if isinstance(literal, str):
        return isinstance(value, str)
    return isinstance(value, (int, float)) and not math.isnan(value)


def like_regex(pattern: str, *, fold: bool = False) -> re.Pattern[str]:
    """A LIKE pattern as a regular expression: ``%`` any run, ``_`` one character, a
    backslash escapes the next one; ``fold`` folds ASCII letters only (as SQLite does)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if fold else 0)
    return re.compile("".join(out), flags)


def sort_key(value: object) -> tuple[int, float | str]:
    """Where a value sorts: numbers, then strings, then everything else (missing last)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    return (2, 0.0)

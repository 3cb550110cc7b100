"""A parsed query printed back as text: what HttpStore sends for the one request.

The canonical form round-trips: ``parse_filter(to_text(e)) == e`` for every tree of
:mod:`mltrail.core.query`, and each of :func:`order_text`'s items parses back to its key.
"""

from __future__ import annotations

from collections.abc import Sequence

from mltrail.core.query import (
    And,
    Expr,
    Membership,
    Not,
    Or,
    OrderKey,
    Value,
)


def _value_text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_text(expr: Expr | None) -> str:
    """The canonical text of a filter: ``parse_filter(to_text(e)) == e`` for every tree."""
    if expr is None:
        return ""
    if isinstance(expr, And):
        return f"({to_text(expr.left)} and {to_text(expr.right)})"
    if isinstance(expr, Or):
        return f"({to_text(expr.left)} or {to_text(expr.right)})"
    if isinstance(expr, Not):
        return f"not {to_text(expr.operand)}"
    if isinstance(expr, Membership):
        values = ", ".join(_value_text(v) for v in expr.values)
        neg = "not " if expr.negated else ""
        return f"{expr.field.text} {neg}in ({values})"
    return f"{expr.field.text} {expr.op} {_value_text(expr.value)}"


def order_text(keys: Sequence[OrderKey]) -> list[str]:
    """The canonical text of each order key: ``"metrics.validation/loss asc"``."""
    return [f"{k.field.text} {'desc' if k.descending else 'asc'}" for k in keys]

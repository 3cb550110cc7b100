"""A parsed query (``core/query.py``) as SQL: WHERE and ORDER BY over ``experiments`` with one
outer join per metric or parameter it names, on SQLite and PostgreSQL alike.

The semantics are the core module's (``core/query_eval.py``'s ``evaluate`` is the
reference): SQL's NULL is the grammar's *unknown*. A value of a dynamic type (a parameter, an
ex_ metric) is read as three typed columns (number, text, boolean), at most one of them not
NULL, so a comparison with a literal of another type is NULL. Strings compare by code point
(``COLLATE "C"`` on PostgreSQL); LIKE is case-sensitive (SQLite's ``GLOB``), ILIKE folds ASCII
letters only on both databases.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    FromClause,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
)

from mltrail.core import query as q
from mltrail.core import validation
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.tables import (
    experiment_params,
    experiment_tags,
    experiments,
    external_metrics,
    metric_series,
)

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FOLD = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())
_ATTRIBUTE_COLUMNS = {
    "id": "number",
    "name": "display_name",
    "description": "description",
    "notes": "notes",
    "created": "created_at",
    "started": "started_at",
    "ended": "ended_at",
}


@dataclass(frozen=True)
class Typed:
    """A dynamic value as three columns; at most one is not NULL."""

    number: ColumnElement[Any]
    text: ColumnElement[Any]
    boolean: ColumnElement[Any]


@dataclass
class Compiled:
    """A query's SQL: what to select from, the WHERE clause and the ORDER BY keys."""

    source: FromClause
    where: ColumnElement[bool]
    order_by: list[ColumnElement[Any]] = field(default_factory=list)


def _join_key(f: q.Field) -> tuple[str, str, str] | None:
    """Which joined row a field reads: ``(kind, name, phase)``; None for attributes."""
    if f.namespace == "params":
        return ("param", f.name, "")
    if f.namespace == "metrics":
        phase, key = f.phase_key
        return ("ex", f.name, "") if f.is_ex else ("series", key, phase)
    return None


def needed(expr: q.Expr, truth: bool = True) -> set[q.Field]:
    """Fields that must hold a value for ``expr`` to be ``truth`` (a comparison with a missing
    value is unknown, neither true nor false): their rows can be inner-joined."""
    if isinstance(expr, q.Not):
        return needed(expr.operand, not truth)
    if isinstance(expr, (q.And, q.Or)):
        left, right = needed(expr.left, truth), needed(expr.right, truth)
        return left | right if isinstance(expr, q.And) == truth else left & right
    tags = expr.field == q.Field("attributes", "tags")
    return set() if tags or expr.field.namespace == "attributes" else {expr.field}


class Compiler:
    """Turns one query into SQL; joins each metric or parameter it names once.

    A metric or parameter the filter cannot be true without is inner-joined, and a first
    order key that the filter guarantees a value is ordered by its bare column, so the
    database may walk the ``(key, phase, last_value)`` index in order and stop after a page.
    ``dense``: whether the project holds a good share of the experiments table; when it does
    not, series values are read through an expression the database cannot serve from that index
    (walking it would visit every other project's rows first).
    """

    def __init__(self, judge: Judge, dialect: str, *, dense: bool = True) -> None:
        self.judge, self.pg, self.dense = judge, dialect == "postgresql", dense
        self.source: FromClause = experiments
        self._joined: dict[tuple[str, str, str], Any] = {}
        self._needed: set[q.Field] = set()

    def compile(self, query: q.Query) -> Compiled:
        self._needed = set() if query.filter is None else needed(query.filter)
        where = true() if query.filter is None else self.predicate(query.filter)
        order: list[ColumnElement[Any]] = []
        for i, key in enumerate(query.order_by):
            order.extend(self.order_key(key, first=i == 0))
        order.append(experiments.c.number)
        return Compiled(self.source, where, order)

    # --- values -------------------------------------------------------------------------
    def _join(self, kind: str, name: str, phase: str = "") -> Any:
        found = self._joined.get((kind, name, phase))
        if found is not None:
            return found
        e = experiments.c
        if kind == "series":
            t = metric_series.alias(f"m{len(self._joined)}")
            on = and_(t.c.experiment_id == e.id, t.c.key == name, t.c.phase == phase)
        elif kind == "ex":
            t = external_metrics.alias(f"x{len(self._joined)}")
            on = and_(t.c.experiment_id == e.id, t.c.key == name)
        else:
            t = experiment_params.alias(f"p{len(self._joined)}")
            on = and_(t.c.experiment_id == e.id, t.c.key == name)
        inner = any(_join_key(f) == (kind, name, phase) for f in self._needed)
        self.source = self.source.join(t, on) if inner else self.source.outerjoin(t, on)
        self._joined[(kind, name, phase)] = t
        return t

    def number(self, f: q.Field) -> ColumnElement[Any]:
        """A numeric field: a series metric (NaN as NULL) or a numeric attribute."""
        if f.namespace == "metrics":
            phase, key = f.phase_key
            t = self._join("series", key, phase)
            column = t.c[f"{f.aggregate}_value"]
            if self.pg:
                return func.nullif(column, literal(math.nan))
            return column if self.dense else column + 0
        e = experiments.c
        if f.name == "duration":
            return e.ended_at - e.started_at
        return e[_ATTRIBUTE_COLUMNS[f.name]]

    def text(self, f: q.Field) -> ColumnElement[Any]:
        if f.name == "status":
            return self.judge.status()
        return experiments.c[_ATTRIBUTE_COLUMNS[f.name]]

    def typed(self, f: q.Field) -> Typed:
        if f.namespace == "params":
            t = self._join("param", f.name)
            return Typed(t.c.num_value, t.c.text_value, t.c.bool_value)
        value = self._join("ex", f.name).c.value
        return self._json_scalar(value)

    def _json_scalar(self, v: Any) -> Typed:
        """An ex_ metric's JSON text (a number, ``NaN``/``Infinity``, a string or a bool)."""
        first = func.substr(v, 1, 1)
        numeric = or_(first.in_(list("-0123456789")), v == "Infinity")
        number: ColumnElement[Any]
        text: ColumnElement[Any]
        if self.pg:
            from sqlalchemy.dialects import postgresql  # not loaded by a SQLite server

            number = cast(v, postgresql.DOUBLE_PRECISION)
            text = cast(v, postgresql.JSONB).op("#>>", return_type=Text())(
                literal_column("'{}'::text[]")
            )
        else:
            number = case(
                (v == "Infinity", literal(math.inf)),
                (v == "-Infinity", literal(-math.inf)),
                else_=cast(v, Double()),
            )
            text = func.json_extract(v, "$")
        return Typed(
            case((numeric, number), else_=null()),
            case((first == '"', text), else_=null()),
            case((v == "true", true()), (v == "false", false()), else_=null()),
        )

    def _collate(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return column.collate("C") if self.pg else column

    # --- predicates ---------------------------------------------------------------------
    def predicate(self, expr: q.Expr) -> ColumnElement[bool]:
        if isinstance(expr, q.And):
            return and_(self.predicate(expr.left), self.predicate(expr.right))
        if isinstance(expr, q.Or):
            return or_(self.predicate(expr.left), self.predicate(expr.right))
        if isinstance(expr, q.Not):
            return not_(self.predicate(expr.operand))
        if expr.field == q.Field("attributes", "tags"):
            return self._tags(expr)
        if isinstance(expr, q.Membership):
            found = or_(*(self._compare(expr.field, "=", v) for v in expr.values))
            return not_(found) if expr.negated else found
        return self._compare(expr.field, expr.op, expr.value)

    def _compare(self, f: q.Field, op: str, value: q.Value) -> ColumnElement[bool]:
        kind = q._field_kind(f)
        if kind is None:
            typed = self.typed(f)
            if isinstance(value, bool):
                return _OPS[op](typed.boolean, value)  # type: ignore[no-any-return]
            column = typed.number if isinstance(value, (int, float)) else typed.text
        elif kind in ("number", "time"):
            column = self.number(f)
        else:
            column = self.text(f)
        if op in q.PATTERNS:
            return self._like(column, op, str(value))
        if isinstance(value, str):
            return _OPS[op](self._collate(column), value)  # type: ignore[no-any-return]
        return _OPS[op](column, float(value))  # type: ignore[no-any-return]

    def _like(self, column: ColumnElement[Any], op: str, pattern: str) -> ColumnElement[bool]:
        fold = op.endswith("ilike")
        if fold:
            pattern = pattern.translate(_FOLD)
            column = (
                func.translate(column, _ASCII_UPPER, _ASCII_UPPER.lower())
                if self.pg
                else func.lower(column)
            )
        if self.pg:
            matched = column.like(_pg_pattern(pattern), escape="\\")
        else:
            matched = column.op("GLOB", is_comparison=True)(_glob_pattern(pattern))
        return not_(matched) if op.startswith("not ") else matched

    def _tags(self, expr: q.Comparison | q.Membership) -> ColumnElement[bool]:
        t = experiment_tags.c
        test: ColumnElement[bool]
        if isinstance(expr, q.Membership):
            test, negated = t.tag.in_([str(v) for v in expr.values]), expr.negated
        elif expr.op in ("=", "!="):
            test, negated = t.tag == str(expr.value), expr.op == "!="
        else:
            like_op = expr.op.removeprefix("not ")
            test, negated = self._like(t.tag, like_op, str(expr.value)), expr.op != like_op
        found = exists(select(t.tag).where(t.experiment_id == experiments.c.id, test))
        return not_(found) if negated else found

    # --- ordering -----------------------------------------------------------------------
    def order_key(self, key: q.OrderKey, *, first: bool = False) -> list[ColumnElement[Any]]:
        f, desc = key.field, key.descending
        kind = q._field_kind(f)
        if first and kind == "number" and f in self._needed and f.namespace == "metrics":
            phase, name = f.phase_key  # the filter leaves no NULL or NaN: the bare column
            column = self._join("series", name, phase).c[f"{f.aggregate}_value"]
            column = column if self.dense else column + 0
            return [column.desc() if desc else column.asc()]
        if kind is None:
            typed = self.typed(f)
            rank = case((typed.number.is_not(None), 0), (typed.text.is_not(None), 1), else_=2)
            columns = [typed.number, self._collate(typed.text)]
            return [rank, *(c.desc() if desc else c.asc() for c in columns)]
        column = self.number(f) if kind in ("number", "time") else self._collate(self.text(f))
        missing = case((column.is_(None), 1), else_=0)
        return [missing, column.desc() if desc else column.asc()]


def _pattern_parts(pattern: str) -> list[tuple[str, str]]:
    """A LIKE pattern as ``("any", "")``, ``("one", "")`` and ``("char", c)`` parts."""
    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            parts.append(("char", pattern[i + 1]))
            i += 2
            continue
        parts.append(("any", "") if c == "%" else ("one", "") if c == "_" else ("char", c))
        i += 1
    return parts


def _render_pattern(pattern: str, wildcards: tuple[str, str], literal: Callable[[str], str]) -> str:
    """A LIKE pattern in a database's syntax: its ``(any run, one character)`` wildcards, and
    each literal character as ``literal`` escapes it."""
    out = []
    for kind, c in _pattern_parts(pattern):
        out.append(wildcards[0] if kind == "any" else wildcards[1] if kind == "one" else literal(c))
    return "".join(out)


def _glob_pattern(pattern: str) -> str:
    """SQLite's GLOB (case-sensitive): ``*``, ``?``, and ``[c]`` for a literal ``*?[``."""
    return _render_pattern(pattern, ("*", "?"), lambda c: f"[{c}]" if c in "*?[" else c)


def _pg_pattern(pattern: str) -> str:
    """PostgreSQL's LIKE with backslash escapes."""
    return _render_pattern(pattern, ("%", "_"), lambda c: "\\" + c if c in "%_\\" else c)


def param_rows(experiment_pk: int, hyperparameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``experiment_params`` rows of an experiment's scalar top-level hyperparameters
    (NaN, mappings, lists and text no database holds, such as a lone surrogate, are not
    searchable and get no row; the hyperparameters' JSON keeps them all)."""
    rows = []
    for key, value in hyperparameters.items():
        if not validation.is_storable(str(key)) or (
            isinstance(value, str) and not validation.is_storable(value)
        ):
            continue
        row = {"experiment_id": experiment_pk, "key": str(key)}
        if isinstance(value, bool):
            rows.append({**row, "num_value": None, "text_value": None, "bool_value": value})
        elif isinstance(value, (int, float)) and not math.isnan(value):
            number = float(value) if abs(value) < 1e308 else math.copysign(math.inf, value)
            rows.append({**row, "num_value": number, "text_value": None, "bool_value": None})
        elif isinstance(value, str):
            rows.append({**row, "num_value": None, "text_value": value, "bool_value": None})
    return rows

"""The experiment query language: one filter and order grammar, parsed once, here.

Every entrance (``as_api().experiments.search``, ``mltrail experiments list --filter``,
``GET /api/v1/projects/{p}/experiments?filter=...``, the MLflow surface's translation of its
own filter strings) turns text into the typed tree below with :func:`parse_filter` and
:func:`parse_order_by`; the stores execute the tree in the database and nothing re-parses it
(:mod:`mltrail.core.query_text` prints a tree back, for HttpStore's one request).

Grammar (keywords are case-insensitive)::

    filter    := or_expr
    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | "(" or_expr ")" | predicate
    predicate := field op literal
               | field ["not"] "in" "(" literal ("," literal)* ")"
               | field ["not"] ("like" | "ilike") string
    op        := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal   := string | number | "true" | "false"
    order_by  := field ["asc" | "desc"] ("," field ["asc" | "desc"])*

Fields:

* ``metrics.KEY`` the last value of a series, ``metrics.KEY.min`` / ``metrics.KEY.max`` its
  extremes. ``KEY`` is ``phase/key`` as experiments list their metrics
  (``metrics.validation/loss``); without a known phase prefix the phase is ``train``
  (``metrics.loss`` is ``metrics.train/loss``). ``metrics.ex_NAME`` is an external metric.
* ``params.NAME``: a hyperparameter.
* ``status`` (as read, so ``crashed`` too), ``name``, ``description``, ``notes``, ``tags``
  (true when any tag matches), ``id`` (the experiment's number), ``created``, ``started``,
  ``ended`` (unix seconds, or an ISO 8601 string; UTC unless it says otherwise) and
  ``duration`` (``ended - started`` in seconds).

A name segment that holds spaces, dots or operator characters is written in backquotes
(``params.`batch size```; a backquote inside is doubled); ``/``, ``-`` and ``:`` need none.
Strings take single or double quotes; a backslash escapes a quote or a backslash and is kept
before any other character (so ``'50\\%'`` is the LIKE pattern for a literal ``50%``).

Semantics (the stores and ``core/query_eval.py`` agree on them): a value that is missing (the
experiment has no such metric or parameter), NaN, or of another type than the literal
(a number compared with a string) makes a comparison *unknown*, and ``not unknown`` is unknown
(SQL's three-valued logic), so such experiments never match. ``like`` is case-sensitive,
``ilike`` folds ASCII letters; ``%`` matches any run of characters, ``_`` one. Strings compare
by code point. Sorting puts missing values last in both directions, numbers before strings
(parameters of other types sort as missing), and ties by the experiment's number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, TypeAlias

from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.types import Phase, Status

Value: TypeAlias = str | int | float | bool
Namespace = Literal["metrics", "params", "attributes"]
Aggregate = Literal["last", "min", "max"]

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
PATTERNS = ("like", "not like", "ilike", "not ilike")
NUMERIC_ATTRIBUTES = ("id", "created", "started", "ended", "duration")
TIME_ATTRIBUTES = ("created", "started", "ended")
TEXT_ATTRIBUTES = ("name", "description", "notes", "status")
ATTRIBUTES = (*NUMERIC_ATTRIBUTES, *TEXT_ATTRIBUTES, "tags")
EX_PREFIX = "ex_"
_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "ilike", "asc", "desc", "true", "false"})
_PHASES = tuple(p.value for p in Phase)
_STATUSES = tuple(s.value for s in Status)
_BARE = re.compile(r"[A-Za-z0-9_/:\-]+")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATOR = re.compile(r"!=|<>|<=|>=|=|<|>")
_WORD = re.compile(r"[A-Za-z]+(?![A-Za-z0-9_/:\-.`])")


class QueryError(ValidationError):
    """A filter or order that does not parse: says where and at which token.

    Attributes:
        position: 0-based character offset of the token in the text.
        token: the offending text (empty at the end of the input).
    """

    def __init__(self, field: str, position: int, token: str, problem: str) -> None:
        shown = token or "end of input"
        super().__init__(f"{problem} at position {position}: {shown}", field)
        self.position = position
        self.token = token


@dataclass(frozen=True)
class Field:
    """What a predicate or an order key reads.

    Attributes:
        namespace: ``metrics``, ``params`` or ``attributes``.
        name: metrics: ``phase/key`` or ``ex_NAME``; params: the hyperparameter's name;
            attributes: one of :data:`ATTRIBUTES`.
        aggregate: metrics only: ``last`` (default), ``min`` or ``max``.
    """

    namespace: Namespace
    name: str
    aggregate: Aggregate = "last"

    @property
    def is_ex(self) -> bool:
        """An external (``ex_``) metric: a value of any scalar type, no min or max."""
        return self.namespace == "metrics" and self.name.startswith(EX_PREFIX)

    @property
    def phase_key(self) -> tuple[str, str]:
        """A series metric's ``(phase, key)``."""
        phase, _, key = self.name.partition("/")
        return phase, key

    @property
    def text(self) -> str:
        """The field as a filter writes it (backquoting a name segment that needs it)."""
        if self.namespace == "attributes":
            return self.name
        name = self.name if _BARE.fullmatch(self.name) else f"`{self.name.replace('`', '``')}`"
        text = f"{self.namespace}.{name}"
        return text if self.aggregate == "last" else f"{text}.{self.aggregate}"


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``op`` is one of :data:`COMPARISONS` or :data:`PATTERNS`."""

    field: Field
    op: str
    value: Value


@dataclass(frozen=True)
class Membership:
    """``field [not] in (values...)``."""

    field: Field
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr: TypeAlias = "Comparison | Membership | And | Or | Not"


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed search: an optional filter and order keys (the store adds the experiment's
    number as the last key, so pages are stable)."""

    filter: Expr | None = None
    order_by: tuple[OrderKey, ...] = ()


def parse_query(
    filter: str | Query | None = None, order_by: str | Sequence[str] | None = None
) -> Query:
    """Parse a filter and an order (see the module's grammar); a ``Query`` passes as is.

    Raises:
        QueryError: (field ``filter`` or ``order_by``) naming the position and token.
    """
    if isinstance(filter, Query):
        return filter
    return Query(parse_filter(filter), parse_order_by(order_by))


# ---------------------------------------------------------------- parsing


class _Cursor:
    """A hand-written scanner: the parser asks for what it expects at the current position."""

    def __init__(self, text: str, what: str) -> None:
        if not validation.is_unicode(text):  # "\\ud800" would reach the database: a 500
            raise ValidationError("must not contain unpaired surrogates", what)
        self.text, self.what, self.pos = text, what, 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def fail(self, problem: str, start: int | None = None) -> QueryError:
        self.skip_space()
        start = self.pos if start is None else start
        token = re.match(r"\s*(\S{1,40})", self.text[start:])
        return QueryError(self.what, start, token.group(1) if token else "", problem)

    def match(self, pattern: re.Pattern[str]) -> str | None:
        self.skip_space()
        found = pattern.match(self.text, self.pos)
        if not found:
            return None
        self.pos = found.end()
        return found.group(0)

    def keyword(self, *words: str) -> str | None:
        self.skip_space()
        found = _WORD.match(self.text, self.pos)
        if found and found.group(0).lower() in words:
            self.pos = found.end()
            return found.group(0).lower()
        return None

    def char(self, c: str) -> bool:
        self.skip_space()
        if self.text.startswith(c, self.pos):
            self.pos += 1
            return True
        return False

    def quoted(self, quote: str) -> str:
        """The text between ``quote`` characters from the current position (past the opener)."""
        out, i, text = [], self.pos + 1, self.text
        while i < len(text):
            c = text[i]
            if c == quote and quote == "`" and text.startswith("``", i):
                out.append("`")
                i += 2
            elif c == quote:
                self.pos = i + 1
                return "".join(out)
            elif c == "\\" and quote != "`" and i + 1 < len(text):
                nxt = text[i + 1]
                out.append(nxt if nxt in "\\'\"" else c + nxt)
                i += 2
            else:
                out.append(c)
                i += 1
        raise self.fail("unterminated quote")


def parse_filter(text: str | None) -> Expr | None:
    """Parse a filter expression; ``None`` or blank text means no filter.

    Raises:
        QueryError: (a ``ValidationError``, field ``filter``) naming the position and token.
    """
    if text is None or not str(text).strip():
        return None
    if not isinstance(text, str):
        raise ValidationError(f"must be a string, got {type(text).__name__}", "filter")
    cur = _Cursor(text, "filter")
    expr = _or(cur)
    if not cur.at_end():
        raise cur.fail("expected 'and', 'or' or the end")
    return expr


def parse_order_by(items: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Parse order keys: a list of ``"FIELD [asc|desc]"`` items, each of which may itself be a
    comma-separated list. ``None`` or empty: no keys (the store orders by number).

    Raises:
        QueryError: (field ``order_by``) naming the position and token.
    """
    if items is None:
        return ()
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, Sequence):
        raise ValidationError("must be a string or a list of strings", "order_by")
    keys: list[OrderKey] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError(f"must be strings, got {type(item).__name__}", "order_by")
        if not item.strip():
            continue
        cur = _Cursor(item, "order_by")
        while True:
            field = _field(cur)
            if field.namespace == "attributes" and field.name == "tags":
                raise cur.fail("tags cannot be sorted on", cur.pos - 4)
            keys.append(OrderKey(field, cur.keyword("asc", "desc") == "desc"))
            if cur.at_end():
                break
            if not cur.char(","):
                raise cur.fail("expected 'asc', 'desc', ',' or the end")
    return tuple(keys)


def _or(cur: _Cursor) -> Expr:
    expr = _and(cur)
    while cur.keyword("or"):
        expr = Or(expr, _and(cur))
    return expr


def _and(cur: _Cursor) -> Expr:
    expr = _not(cur)
    while cur.keyword("and"):
        expr = And(expr, _not(cur))
    return expr


def _not(cur: _Cursor) -> Expr:
    start = cur.pos
    if cur.keyword("not"):
        if cur.keyword("in", "like", "ilike"):  # "not" was a field name? no: no such field
            raise cur.fail("expected a field", start)
        return Not(_not(cur))
    if cur.char("("):
        expr = _or(cur)
        if not cur.char(")"):
            raise cur.fail("expected ')'")
        return expr
    return _predicate(cur)


def _predicate(cur: _Cursor) -> Expr:
    field = _field(cur)
    cur.skip_space()
    start = cur.pos
    negated = cur.keyword("not") is not None
    word = cur.keyword("in", "like", "ilike")
    if word == "in":
        return Membership(field, _values(cur, field), negated)
    if word is not None:
        cur.skip_space()
        value_at = cur.pos
        value = _literal(cur)
        if not isinstance(value, str):
            raise cur.fail(f"{word} needs a string pattern", value_at)
        _check_pattern_field(cur, field, start)
        return Comparison(field, f"not {word}" if negated else word, value)
    if negated:
        raise cur.fail("expected 'in', 'like' or 'ilike' after 'not'")
    op = cur.match(_OPERATOR)
    if op is None:
        raise cur.fail("expected an operator (= != < <= > >= in like ilike)")
    op = "!=" if op == "<>" else op
    if field.namespace == "attributes" and field.name == "tags" and op not in ("=", "!="):
        raise cur.fail("tags take = != in like ilike", start)
    return Comparison(field, op, _value(cur, field, op))


def _check_pattern_field(cur: _Cursor, field: Field, start: int) -> None:
    numeric = field.namespace == "metrics" and not field.is_ex
    if numeric or (field.namespace == "attributes" and field.name in NUMERIC_ATTRIBUTES):
        raise cur.fail(f"like needs a text field, not {field.text}", start)


def _values(cur: _Cursor, field: Field) -> tuple[Value, ...]:
    if not cur.char("("):
        raise cur.fail("expected '(' after 'in'")
    values = [_value(cur, field, "=")]
    while cur.char(","):
        values.append(_value(cur, field, "="))
    if not cur.char(")"):
        raise cur.fail("expected ',' or ')'")
    return tuple(values)


def _value(cur: _Cursor, field: Field, op: str) -> Value:
    """A literal checked against what ``field`` holds."""
    cur.skip_space()
    start = cur.pos
    value = _literal(cur)
    kind = _field_kind(field)
    if isinstance(value, bool) and (op not in ("=", "!=") or kind is not None):
        raise cur.fail("true and false only compare with = or != to params and ex_ metrics", start)
    if kind == "time" and isinstance(value, str):
        return _timestamp(cur, value, start)
    if kind in ("number", "time") and not isinstance(value, (int, float)):
        raise cur.fail(f"{field.text} holds numbers", start)
    if kind == "text" and not isinstance(value, str):
        raise cur.fail(f"{field.text} holds text: quote the value", start)
    if field == Field("attributes", "status") and value not in _STATUSES:
        raise cur.fail(f"status is one of {', '.join(_STATUSES)}", start)
    return value


def _field_kind(field: Field) -> str | None:
    """``number``, ``time``, ``text`` or ``None`` (any scalar: params and ex_ metrics)."""
    if field.namespace == "metrics":
        return None if field.is_ex else "number"
    if field.namespace == "params":
        return None
    if field.name in TIME_ATTRIBUTES:
        return "time"
    return "number" if field.name in NUMERIC_ATTRIBUTES else "text"


def _timestamp(cur: _Cursor, text: str, start: int) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise cur.fail("expected unix seconds or an ISO 8601 time", start) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _literal(cur: _Cursor) -> Value:
    cur.skip_space()
    c = cur.text[cur.pos : cur.pos + 1]
    if c in ("'", '"'):
        return cur.quoted(c)
    number = cur.match(_NUMBER)
    if number is not None:
        if re.fullmatch(r"-?\d+", number):
            return int(number)
        value = float(number)
        if not math.isfinite(value):
            raise cur.fail("number out of range", cur.pos - len(number))
        return value
    word = cur.keyword("true", "false")
    if word is not None:
        return word == "true"
    raise cur.fail("expected a value (a quoted string, a number, true or false)")


def _segment(cur: _Cursor) -> tuple[str, bool] | None:
    """One name segment and whether it was backquoted."""
    if cur.text.startswith("`", cur.pos):
        return cur.quoted("`"), True
    found = _BARE.match(cur.text, cur.pos)
    if not found:
        return None
    cur.pos = found.end()
    return found.group(0), False


def _field(cur: _Cursor) -> Field:
    cur.skip_space()
    start = cur.pos
    first = _segment(cur)
    if first is None or first[1]:
        raise cur.fail("expected a field (metrics.KEY, params.NAME, status, name, ...)", start)
    head = first[0].lower()
    segments: list[tuple[str, bool]] = []
    while cur.text.startswith(".", cur.pos):
        cur.pos += 1
        seg = _segment(cur)
        if seg is None:
            raise cur.fail("expected a name after '.'", cur.pos)
        segments.append(seg)
    if head in ATTRIBUTES and not segments:
        return Field("attributes", head)
    if head not in ("metrics", "params") or not segments:
        raise cur.fail(
            "unknown field: use metrics.KEY, params.NAME or " + ", ".join(ATTRIBUTES), start
        )
    if any(not s for s, _ in segments):
        raise cur.fail("empty name", start)
    if head == "params":
        return Field("params", ".".join(s for s, _ in segments))
    aggregate: Aggregate = "last"
    last, quoted = segments[-1]
    if len(segments) > 1 and not quoted and last.lower() in ("last", "min", "max"):
        aggregate = last.lower()  # type: ignore[assignment]
        segments.pop()
    name = ".".join(s for s, _ in segments)
    if name.startswith(EX_PREFIX):
        if aggregate != "last":
            raise cur.fail("ex_ metrics have no min or max", start)
        return Field("metrics", name)
    phase, _, key = name.partition("/")
    if phase not in _PHASES or not key:
        name = f"train/{name}"
    return Field("metrics", name, aggregate)

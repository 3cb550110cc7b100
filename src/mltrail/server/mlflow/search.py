"""MLflow's ``search_runs`` filter strings and ``order_by`` as mltrail's query tree.

MLflow's grammar is read here and every clause becomes a node of :mod:`mltrail.core.query`
(``Comparison``, ``Membership``, ``And``, ``Not``, ``OrderKey``), which the store executes in the
database as it does mltrail's own filters: there is no second evaluator. MLflow's grammar::

    filter  := clause ("AND" clause)*
    clause  := identifier op value | identifier ["NOT"] "IN" "(" string ("," string)* ")"
    identifier := [entity "."] key   (entity: metrics, params, tags, attributes and their
                  singular forms; a key in backquotes or double quotes may hold anything)
    op      := = != < <= > >= LIKE ILIKE
    order_by item := identifier ["ASC" | "DESC"]

Translations (``docs/mlflow.md``): ``metrics.KEY`` is the last value of the series MLflow's key
names (``metrics.validation/loss`` is the validation phase's ``loss``); ``params.NAME`` compares
as text and, for a value that reads as a number, as that number too (mltrail keeps numbers an
SDK logged as numbers); ``tags.KEY`` is the mltrail tag ``KEY=value``; ``mlflow.runName`` and
``mlflow.note.content`` are the name and the description; ``status`` takes MLflow's statuses;
``start_time`` / ``end_time`` (milliseconds) are ``started`` / ``ended``; ``run_id`` is the
experiment's number within its project.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Response

from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.lifecycle import Lifecycle
from mltrail.core.query import And, Comparison, Expr, Field, Membership, Not, Or, OrderKey, Query
from mltrail.core.types import Experiment
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.errors import MlflowRoute
from mltrail.server.mlflow.messages import MessageDep, StoreDep, project_of
from mltrail.server.mlflow.run_pages import runs_page_json

router = APIRouter(route_class=MlflowRoute)
SEARCH_PAGE_SIZE = 1000  # MLflow's SEARCH_MAX_RESULTS_DEFAULT
MAX_SEARCH_RESULTS = 50_000
# MLflow's ViewType: a hidden (archived or trashed) mltrail run is what MLflow calls deleted
_VIEWS = {
    "ACTIVE_ONLY": (Lifecycle.ACTIVE,),
    "DELETED_ONLY": (Lifecycle.ARCHIVED, Lifecycle.DELETED),
    "ALL": tuple(Lifecycle),
}
_VIEW_NUMBERS = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}

_ENTITIES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
_TIME_ATTRIBUTES = {"start_time": "started", "created": "started", "end_time": "ended"}
_TEXT_ATTRIBUTES = {"run_name": "name", "status": "status"}
_MLFLOW_STATUSES = {
    "RUNNING": ("running",),
    "SCHEDULED": ("queued",),
    "FINISHED": ("done",),
    "FAILED": ("failed", "crashed"),
    "KILLED": ("stopped",),
}
_TAG_FIELDS = {shapes.RUN_NAME_TAG: "name", shapes.NOTE_TAG: "description"}

_SPACE = re.compile(r"\s*")
_BARE_KEY = re.compile(r"[\w/:\-.]+")
_OPERATOR = re.compile(r"(?i)(!=|<>|<=|>=|=|<|>|not\s+in\b|in\b|not\s+i?like\b|i?like\b)")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_AND = re.compile(r"(?i)and\b")
_DIRECTION = re.compile(r"(?i)(asc|desc)\b")
_NEVER = Comparison(Field("attributes", "id"), "<", 0)  # numbers start at 1: matches nothing


class _Text:
    """A cursor over MLflow's filter or order text; failures name the position and token."""

    def __init__(self, text: str, field: str) -> None:
        if not validation.is_unicode(text):  # "\\ud800" would reach the database: a 500
            raise ValidationError("must not contain unpaired surrogates", field)
        self.text, self.field, self.pos = text, field, 0

    def fail(self, problem: str) -> ValidationError:
        token = self.text[self.pos : self.pos + 30].split(" ")[0] or "end of input"
        return ValidationError(f"{problem} at position {self.pos}: {token}", self.field)

    def match(self, pattern: re.Pattern[str]) -> str | None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        found = pattern.match(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group(0)

    def at_end(self) -> bool:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        return self.pos >= len(self.text)

    def quoted(self) -> str | None:
        """A ``'...'``, ``"..."`` or backquoted string (a backslash escapes the next character)."""
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        quote = self.text[self.pos : self.pos + 1]
        if quote not in ("'", '"', "`"):
            return None
        out, i = [], self.pos + 1
        while i < len(self.text):
            c = self.text[i]
            if c == "\\" and i + 1 < len(self.text):
                out.append(self.text[i + 1])
                i += 2
            elif c == quote:
                self.pos = i + 1
                return "".join(out)
            else:
                out.append(c)
                i += 1
        raise self.fail("unterminated quote")

    def identifier(self) -> tuple[str, str]:
        """``(entity, key)``; a bare name is an attribute."""
        quoted = self.quoted()
        if quoted is not None:
            return "attributes", quoted
        word = self.match(_BARE_KEY)
        if word is None:
            raise self.fail("expected a metrics., params., tags. or attribute name")
        head, dot, rest = word.partition(".")
        entity = _ENTITIES.get(head.lower()) if dot else None
        if entity is None:
            return "attributes", word
        if rest:
            return entity, rest
        key = self.quoted()
        if key is None:
            raise self.fail(f"expected a key after '{head}.'")
        return entity, key


@router.post("/runs/search")
def search_runs(message: MessageDep, store: StoreDep) -> Response:
    """Runs of the given experiments matching the filter, in ``order_by`` order (newest first
    by default), a page at a time: one database search per experiment, taken in turn."""
    projects = list(dict.fromkeys(
        project_of(store, e, f"experiment_ids[{i}]")
        for i, e in enumerate(message.items("experiment_ids"))
    ))  # fmt: skip
    if not projects:
        raise ValidationError("is required: at least one experiment id", "experiment_ids")
    limit = shapes.integer(message.get("max_results"), "max_results", SEARCH_PAGE_SIZE)
    if not 1 <= limit <= MAX_SEARCH_RESULTS:
        raise ValidationError(f"must be between 1 and {MAX_SEARCH_RESULTS}", "max_results")
    offset = shapes.page_offset(message.get("page_token"))
    include = _view(message.get("run_view_type"))
    order = translate_order_by(message.items("order_by"))
    found: list[Experiment] = []
    skip, more = offset, False
    for project in projects:
        query = Query(translate_filter(message.get("filter"), project), order)
        page = store.search_experiments(
            project, query, offset=skip, limit=limit - len(found), include=include
        )
        found += page.items
        more = skip + len(page.items) < page.total
        skip = max(0, skip - page.total)
        if len(found) == limit:
            more = more or project != projects[-1]
            break
    token = str(offset + len(found)) if more else None
    return Response(runs_page_json(found, token), media_type="application/json")


def _view(value: Any) -> tuple[Lifecycle, ...]:
    name = _VIEW_NUMBERS.get(value, value) if isinstance(value, int) else value
    if value is None:
        return _VIEWS["ACTIVE_ONLY"]
    if not isinstance(name, str) or name not in _VIEWS:  # a list or object is no name either
        raise ValidationError(f"must be one of {', '.join(_VIEWS)}, got {value!r}", "run_view_type")
    return _VIEWS[name]


def translate_filter(text: Any, project_id: int) -> Expr | None:
    """MLflow's filter string as mltrail's filter, for the runs of ``project_id``.

    Raises:
        ValidationError: (field ``filter``) a clause MLflow would refuse or mltrail cannot
            answer, naming its position.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        raise ValidationError(f"must be a string, got {type(text).__name__}", "filter")
    cur = _Text(text, "filter")
    clauses = [_clause(cur, project_id)]
    while not cur.at_end():
        if cur.match(_AND) is None:
            raise cur.fail("expected AND (MLflow's filters join clauses with AND only)")
        clauses.append(_clause(cur, project_id))
    expr = clauses[0]
    for clause in clauses[1:]:
        expr = And(expr, clause)
    return expr


def translate_order_by(items: Iterable[Any]) -> tuple[OrderKey, ...]:
    """MLflow's ``order_by`` items; none means MLflow's default, the newest run first."""
    keys = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValidationError("must be a string", f"order_by[{i}]")
        cur = _Text(item, f"order_by[{i}]")
        entity, key = cur.identifier()
        field = _order_field(cur, entity, key)
        direction = (cur.match(_DIRECTION) or "asc").lower()
        if not cur.at_end():
            raise cur.fail("expected ASC, DESC or the end")
        keys.append(OrderKey(field, direction == "desc"))
    return tuple(keys) or (OrderKey(Field("attributes", "started"), True),)


def _order_field(cur: _Text, entity: str, key: str) -> Field:
    if entity == "metrics":
        return _metric_field(key)
    if entity == "params":
        return Field("params", key)
    if entity == "tags" and key in _TAG_FIELDS:
        return Field("attributes", _TAG_FIELDS[key])
    name = _TIME_ATTRIBUTES.get(key) or _TEXT_ATTRIBUTES.get(key)
    if entity == "attributes" and name is not None:
        return Field("attributes", name)
    if entity == "attributes" and key == "run_id":
        return Field("attributes", "id")
    raise cur.fail(f"cannot order by {entity}.{key} (see docs/mlflow.md)")


def _metric_field(key: str) -> Field:
    phase, series_key = shapes.series_of(key)
    return Field("metrics", key if key.startswith("ex_") else f"{phase}/{series_key}")


def _clause(cur: _Text, project_id: int) -> Expr:
    entity, key = cur.identifier()
    op = cur.match(_OPERATOR)
    if op is None:
        raise cur.fail("expected a comparison (= != < <= > >= LIKE ILIKE IN)")
    op = re.sub(r"\s+", " ", op.lower()).replace("<>", "!=")
    if op in ("in", "not in"):
        return _membership(cur, entity, key, op == "not in", project_id)
    cur.at_end()
    start = cur.pos
    value = _value(cur)
    end, cur.pos = cur.pos, start  # a clause's failures point at its value
    if entity == "metrics":
        expr = _metric(cur, key, op, value)
    elif entity == "params":
        expr = _param(cur, key, op, value)
    elif entity == "tags":
        expr = _tag(cur, key, op, value)
    else:
        expr = _attribute(cur, key, op, value, project_id)
    cur.pos = end
    return expr


def _value(cur: _Text) -> str | float | int:
    quoted = cur.quoted()
    if quoted is not None:
        return quoted
    number = cur.match(_NUMBER)
    if number is None:
        raise cur.fail("expected a quoted string or a number")
    return int(number) if re.fullmatch(r"-?\d+", number) else float(number)


def _metric(cur: _Text, key: str, op: str, value: Any) -> Expr:
    if "like" in op or not isinstance(value, (int, float)):
        raise cur.fail(f"metrics.{key} compares with = != < <= > >= and a number")
    return Comparison(_metric_field(key), op, value)


def _param(cur: _Text, key: str, op: str, value: Any) -> Expr:
    if not isinstance(value, str):
        raise cur.fail(f"params.{key} holds text: quote the value")
    text = Comparison(Field("params", key), op, value)
    if "like" in op or _NUMBER.fullmatch(value) is None:
        return text
    number = float(value) if re.search(r"[.eE]", value) else int(value)
    return Or(text, Comparison(Field("params", key), op, number))


def _tag(cur: _Text, key: str, op: str, value: Any) -> Expr:
    if not isinstance(value, str):
        raise cur.fail(f"tags.{key} holds text: quote the value")
    if key in _TAG_FIELDS:
        return _text_comparison(cur, _TAG_FIELDS[key], op, value)
    tags = Field("attributes", "tags")
    if op == "=":
        return Comparison(tags, "=", shapes.tag_label(key, value))
    present = Comparison(tags, "like", _like_literal(key) + "=%")
    if op == "!=":
        return And(present, Not(Comparison(tags, "=", shapes.tag_label(key, value))))
    if op in ("like", "ilike"):
        return Comparison(tags, op, _like_literal(key) + "=" + value)
    raise cur.fail(f"tags.{key} compares with = != LIKE ILIKE")


def _like_literal(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern."""
    return re.sub(r"([\\%_])", r"\\\1", text)


def _attribute(cur: _Text, key: str, op: str, value: Any, project_id: int) -> Expr:
    if key in _TIME_ATTRIBUTES:
        if "like" in op or not isinstance(value, (int, float)):
            raise cur.fail(f"{key} compares with a number of milliseconds")
        return Comparison(Field("attributes", _TIME_ATTRIBUTES[key]), op, value / 1000.0)
    if not isinstance(value, str):
        raise cur.fail(f"{key} holds text: quote the value")
    if key == "status":
        return _status(cur, op, value)
    if key == "run_name":
        return _text_comparison(cur, "name", op, value)
    if key in ("run_id", "run_uuid") and op in ("=", "!="):
        return _membership_of_ids([value], op == "!=", project_id, cur)
    raise cur.fail(f"{key} is not searchable in mltrail (see docs/mlflow.md)")


def _text_comparison(cur: _Text, name: str, op: str, value: str) -> Expr:
    if op not in ("=", "!=", "like", "ilike"):
        raise cur.fail(f"{name} compares with = != LIKE ILIKE")
    return Comparison(Field("attributes", name), op, value)


def _status(cur: _Text, op: str, value: str) -> Expr:
    statuses = _MLFLOW_STATUSES.get(value.upper())
    if statuses is None or op not in ("=", "!="):
        raise cur.fail(f"status compares with = or != and one of {', '.join(_MLFLOW_STATUSES)}")
    return Membership(Field("attributes", "status"), statuses, op == "!=")


def _membership(cur: _Text, entity: str, key: str, negated: bool, project_id: int) -> Expr:
    if not cur.match(re.compile(r"\(")):
        raise cur.fail("expected '(' after IN")
    values = [_value(cur)]
    while cur.match(re.compile(r",")):
        values.append(_value(cur))
    if not cur.match(re.compile(r"\)")):
        raise cur.fail("expected ',' or ')'")
    if entity == "attributes" and key in ("run_id", "run_uuid"):
        return _membership_of_ids(values, negated, project_id, cur)
    if entity == "attributes" and key == "status":
        statuses = tuple(s for v in values for s in _MLFLOW_STATUSES.get(str(v).upper(), ()))
        if not statuses:
            return Not(_NEVER) if negated else _NEVER
        return Membership(Field("attributes", "status"), statuses, negated)
    raise cur.fail("IN takes run_id or status (MLflow's rule)")


def _membership_of_ids(values: list[Any], negated: bool, project_id: int, cur: _Text) -> Expr:
    numbers = []
    for value in values:
        try:
            ref = shapes.parse_run_id(value, "filter")
        except ValidationError:
            raise cur.fail(f"{value!r} is not a run id") from None
        if ref.project_id == project_id:
            numbers.append(ref.experiment_id)
    if not numbers:
        return Not(_NEVER) if negated else _NEVER
    return Membership(Field("attributes", "id"), tuple(numbers), negated)

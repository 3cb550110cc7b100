"""Search contract: the database's answer to a random filter and order equals the Python
evaluation (``core.query_eval.evaluate``) of the same query on the same random experiments.

Runs on SqlStore (SQLite, PostgreSQL) through the ``store`` fixture; tests/server re-runs it
through HttpStore in-process and against real servers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrail.core import query as q
from mltrail.core import query_eval, query_text
from mltrail.core.errors import ValidationError
from mltrail.core.lifecycle import include
from mltrail.core.types import Status
from mltrail.store.base import Store
from support.factories import batch, chunk
from support.servers import unique_name

PARAMS: dict[str, list[Any]] = {
    "lr": [1, 0.1, 0.01, 0.001],
    "opt": ["adam", "sgd", "Adam", "a_b%"],
    "depth": [2, 4, 8],
    "flag": [True, False],
    "mixed": [1, "1", "x", 2.5],
}
EX: dict[str, list[Any]] = {"ex_cost": [1.5, 3, "high", True], "ex_note": ["ok", "bad", "OK"]}
SERIES = ["train/loss", "validation/acc"]
NAMES = ["alpha", "Beta", "beta-2", "gamma", "ALPHA_x"]
TAGS = ["a", "b", "c%"]
NUMBERS = [0.25, 0.5, 0.75]


@dataclass
class World:
    """The experiments as written, with what each field should read."""

    project: int
    values: dict[int, dict[q.Field, Any]] = field(default_factory=dict)


def _populate(store: Store, seed: int = 7) -> World:
    rng = random.Random(seed)
    project = store.create_project(unique_name("search")).id
    world = World(project)
    for i in range(30):
        params = {k: rng.choice(v) for k, v in PARAMS.items() if rng.random() < 0.75}
        tags = sorted(t for t in TAGS if rng.random() < 0.4)
        exp = store.create_experiment(
            project,
            display_name=f"{rng.choice(NAMES)}-{i}",
            hyperparameters=params,
            tags=tags,
            description=rng.choice(["", "baseline", "Sweep 50%"]),
        )
        number = exp.experiment_id
        seen: dict[q.Field, Any] = {q.Field("params", k): v for k, v in params.items()}
        seen[q.Field("attributes", "tags")] = tags
        chunks = []
        for name in SERIES:
            if rng.random() < 0.2:
                continue
            phase, key = name.split("/")
            values = [round(rng.random(), 2) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.15:
                values[-1] = math.nan
            chunks.append(chunk(key, range(len(values)), values, phase=phase))
            finite = [v for v in values if not math.isnan(v)]
            seen[q.Field("metrics", name)] = values[-1]
            seen[q.Field("metrics", name, "min")] = min(finite) if finite else None
            seen[q.Field("metrics", name, "max")] = max(finite) if finite else None
        if chunks:
            store.append_points(project, number, batch(1, *chunks))
        ex = {k: rng.choice(v) for k, v in EX.items() if rng.random() < 0.6}
        if ex:
            store.put_external_metrics([exp.ref], ex)
        seen.update({q.Field("metrics", k): v for k, v in ex.items()})
        status = rng.choice([None, Status.DONE, Status.FAILED])
        if status is not None:
            store.update_experiment(project, number, status=status)
        if rng.random() < 0.3:
            store.update_experiment(project, number, notes=rng.choice(["# Notes\nfine", "meh"]))
        world.values[number] = seen
    for exp in store.search_experiments(project, limit=1000).items:
        seen = world.values[exp.experiment_id]
        ended = exp.ended_at
        started = exp.started_at
        seen.update(
            {
                q.Field("attributes", "id"): exp.experiment_id,
                q.Field("attributes", "name"): exp.display_name,
                q.Field("attributes", "description"): exp.description,
                q.Field("attributes", "notes"): exp.notes,
                q.Field("attributes", "status"): exp.status.value,
                q.Field("attributes", "created"): exp.created_at,
                q.Field("attributes", "started"): started,
                q.Field("attributes", "ended"): ended,
                q.Field("attributes", "duration"): (
                    None if ended is None or started is None else ended - started
                ),
            }
        )
    return world


def _literals(f: q.Field) -> st.SearchStrategy[Any]:
    if f.namespace == "params":
        return st.sampled_from(PARAMS.get(f.name, [1]))
    if f.is_ex:
        return st.sampled_from(EX.get(f.name, ["x"]))
    if f.namespace == "metrics":
        return st.sampled_from(NUMBERS)
    if f.name == "status":
        return st.sampled_from(["running", "done", "failed"])
    if f.name == "tags":
        return st.sampled_from(TAGS)
    if f.name in ("name", "description", "notes"):
        return st.sampled_from(["alpha", "beta-2", "", "baseline", "meh"])
    if f.name == "id":
        return st.integers(0, 31)
    return st.sampled_from([0, 1e9, 4e9])


_fields = st.sampled_from(
    [q.Field("params", k) for k in [*PARAMS, "absent"]]
    + [q.Field("metrics", k) for k in EX]
    + [q.Field("metrics", s, a) for s in SERIES for a in ("last", "min", "max")]
    + [q.Field("attributes", a) for a in q.ATTRIBUTES]
)
_patterns = st.sampled_from(["%a%", "A%", "_e%", "%\\%", "beta%", "%-_", "%"])


@st.composite
def _predicates(draw: st.DrawFn) -> q.Expr:
    f = draw(_fields)
    numeric = q._field_kind(f) in ("number", "time")
    tags = f.name == "tags" and f.namespace == "attributes"
    choice = draw(st.sampled_from(["cmp", "in", "like"] if not numeric else ["cmp", "in"]))
    if choice == "in":
        values = tuple(draw(st.lists(_literals(f), min_size=1, max_size=3)))
        return q.Membership(f, values, draw(st.booleans()))
    if choice == "like":
        return q.Comparison(f, draw(st.sampled_from(q.PATTERNS)), draw(_patterns))
    value = draw(_literals(f))
    ops = ["=", "!="] if tags or isinstance(value, bool) else list(q.COMPARISONS)
    return q.Comparison(f, draw(st.sampled_from(ops)), value)


_filters = st.recursive(
    _predicates(),
    lambda sub: st.one_of(
        st.builds(q.And, sub, sub), st.builds(q.Or, sub, sub), st.builds(q.Not, sub)
    ),
    max_leaves=4,
)
_orders = st.lists(
    st.builds(q.OrderKey, _fields.filter(lambda f: f.name != "tags"), st.booleans()), max_size=2
)


def _python_order(world: World, numbers: list[int], keys: list[q.OrderKey]) -> list[int]:
    ordered = sorted(numbers)
    for key in reversed(keys):
        value = lambda n, k=key: world.values[n].get(k.field)  # noqa: E731
        ordered.sort(key=lambda n: query_eval.sort_key(value(n)), reverse=key.descending)
        ordered.sort(key=lambda n: query_eval.sort_key(value(n))[0])
    return ordered


def _check(store: Store, world: World, expr: q.Expr, keys: list[q.OrderKey]) -> None:
    text = query_text.to_text(expr)
    query = q.Query(q.parse_filter(text), tuple(keys))
    page = store.search_experiments(world.project, query, limit=1000)
    got = [e.experiment_id for e in page.items]
    matches = [n for n, seen in world.values.items() if query_eval.evaluate(expr, seen.get) is True]
    assert sorted(got) == sorted(matches), text
    assert got == _python_order(world, matches, keys), (text, query_text.order_text(keys))
    assert page.total == len(matches)


# generated filters a run checks; the HTTP re-runs (tests/server/test_search_lifecycle_http.py),
# whose subject is the transport of queries and answers, not their evaluation, check fewer
EXAMPLES = 120


def test_database_answer_equals_python_evaluation(store: Store) -> None:
    world = _populate(store)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(_filters, _orders)
    def check(expr: q.Expr, keys: list[q.OrderKey]) -> None:
        _check(store, world, expr, keys)

    check()


def test_pages_follow_the_order_and_total_counts_all_matches(store: Store) -> None:
    world = _populate(store, seed=3)
    query = q.parse_query("metrics.validation/acc >= 0 or params.lr > 0", ["params.lr desc"])
    whole = store.search_experiments(world.project, query, limit=1000)
    pages = [store.search_experiments(world.project, query, offset=o, limit=4) for o in (0, 4, 8)]
    assert [e.experiment_id for p in pages for e in p.items] == [
        e.experiment_id for e in whole.items
    ][:12]
    assert {p.total for p in pages} == {whole.total} and whole.total > 12


def test_bad_queries_are_validation_errors(store: Store) -> None:
    project = store.create_project(unique_name("search")).id
    with pytest.raises(ValidationError, match="position"):
        store.search_experiments(project, q.parse_query("metrics.loss <"))
    with pytest.raises(ValidationError, match="include"):
        store.search_experiments(project, include=include("gone"))


FIXED = [
    "name like '_e%'",
    "description like '_w%'",
    "description like '_l%' or name like '__p%'",
    "description like '%50\\%'",
    "name ilike 'alpha%'",
    "name not like 'a%'",
    "notes like '#%'",
    "tags like 'c\\%'",
    "tags not in ('a', 'b')",
    "tags != 'a' and tags = 'b'",
    "params.opt ilike 'ADAM'",
    "params.opt like 'a\\_b\\%'",
    "params.mixed = 1 or params.mixed = 'x'",
    "params.mixed in (1, 'x')",
    "params.flag = true and not params.depth >= 4",
    "params.absent != 1",
    "metrics.ex_cost >= 3 or metrics.ex_cost = 'high' or metrics.ex_cost = true",
    "metrics.ex_note > 'bad'",
    "metrics.loss.min < 0.5 and metrics.validation/acc.max > 0.5",
    "metrics.validation/acc != 0.5",
    "status in ('done', 'failed') and duration >= 0",
    "status < 'failed'",
    "ended > 0 or started > 0",
    "id <= 10 and not id in (3, 4)",
]


def test_each_operator_on_each_kind_of_field(store: Store) -> None:
    world = _populate(store, seed=11)
    keys = list(q.parse_order_by(["params.mixed desc", "name asc"]))
    for text in FIXED:
        expr = q.parse_filter(text)
        assert expr is not None
        _check(store, world, expr, keys)


def test_pages_sorted_by_an_optional_metric_cross_from_values_to_missing(store: Store) -> None:
    world = _populate(store, seed=5)
    keys = list(q.parse_order_by(["metrics.validation/acc desc", "params.lr asc"]))
    expected = _python_order(world, list(world.values), keys)
    missing = [n for n in expected if world.values[n].get(keys[0].field) is None]
    assert 0 < len(missing) < len(expected)  # the pages below cross from values to missing
    query = q.Query(None, tuple(keys))
    got = []
    for offset in range(0, len(expected), 7):
        page = store.search_experiments(world.project, query, offset=offset, limit=7)
        assert page.total == len(expected) and page.total_exact
        got += [e.experiment_id for e in page.items]
    assert got == expected
    lone = store.search_experiments(world.project, query, offset=len(expected) - 1, limit=1)
    assert [e.experiment_id for e in lone.items] == expected[-1:]

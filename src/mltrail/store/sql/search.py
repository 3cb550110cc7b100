"""One page of a search: the compiled query (``store/sql/query.py``) run so that its cost
stays flat as a project grows.

* A filtered search counts at most ``COUNT_AHEAD`` matches past its page
  (``Page.total_exact`` false beyond); an unfiltered one is exact: the project's row count
  (``next_experiment - 1 - purged_experiments``) less the rows in the states it leaves out,
  counted through the ``(project_id, state, number)`` index.
* Sorted first by a series metric the filter does not guarantee, the page is read in two
  parts: the experiments holding a value, in the metric's index order (the compiler
  inner-joins and orders by the bare column), then those without one; the second part is read
  only when the first runs out within the page.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, literal, select

from mltrail.core import query as q
from mltrail.core.lifecycle import Lifecycle
from mltrail.core.types import Page
from mltrail.store.sql.access import among
from mltrail.store.sql.experiment_rows import load_experiments
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.query import Compiler, needed
from mltrail.store.sql.tables import experiments, projects

COUNT_AHEAD = 1000  # a filtered search counts this many matches past its page, no more


def search_experiments(
    conn: Connection,
    judge: Judge,
    pid: int,
    query: q.Query,
    page: tuple[Any, Any],
    include: tuple[Lifecycle, ...],
) -> Page:
    """A page of the project's experiments matching ``query`` (``pid`` checked already)."""
    from mltrail.core import validation

    offset = validation.require_int(page[0], "offset", minimum=0)
    limit = validation.require_int(page[1], "limit", minimum=1)
    dense = _dense(conn, pid, offset + limit)
    scope = and_(
        experiments.c.project_id == pid, experiments.c.state.in_([s.value for s in include])
    )
    search = _Search(conn, judge, dense, scope)
    if query.filter is None:
        total, exact = _listed(conn, pid, include), True
    else:
        total, exact = search.count(search.matches(query), offset + limit + COUNT_AHEAD)
    split = _split_field(query)
    if split is None:
        rows = search.page(query, offset, limit)
    else:
        rows = search.split_page(query, split, offset, limit)
    c = experiments.c
    order = {number: i for i, (_, number) in enumerate(rows)}
    ids = select(c.id).where(among(c.id, [r[0] for r in rows], conn.dialect.name))
    found = load_experiments(conn, ids, judge)
    found.sort(key=lambda e: order[e.experiment_id])
    return Page(tuple(found), total, offset, exact)


def _listed(conn: Connection, pid: int, include: tuple[Lifecycle, ...]) -> int:
    """How many of the project's experiments are in the ``include`` states, counting through
    the ``(project_id, state, number)`` index only the states left out when active ones are
    in: the project holds ``next_experiment - 1 - purged_experiments`` rows (numbers are never
    given twice), so the count does not grow with a project of active experiments."""
    c = experiments.c

    def counted(states: set[Lifecycle]) -> int:
        if not states:
            return 0
        where = (c.project_id == pid) & c.state.in_([s.value for s in states])
        return int(conn.execute(select(func.count()).where(where)).scalar_one())

    if Lifecycle.ACTIVE not in include:
        return counted(set(include))
    held = select(projects.c.next_experiment - 1 - projects.c.purged_experiments)
    rows = int(conn.execute(held.where(projects.c.id == pid)).scalar_one())
    return rows - counted(set(Lifecycle) - set(include))


def _split_field(query: q.Query) -> q.Field | None:
    """The first order key's field when it is a series metric the filter leaves optional."""
    if not query.order_by:
        return None
    f = query.order_by[0].field
    if f.namespace != "metrics" or f.is_ex or f.aggregate != "last":
        return None
    return None if query.filter is not None and f in needed(query.filter) else f


class _Search:
    """The compiled pieces of one search, on one connection."""

    def __init__(self, conn: Connection, judge: Judge, dense: bool, scope: Any) -> None:
        self.conn, self.judge, self.dense, self.scope = conn, judge, dense, scope

    def _compiler(self) -> Compiler:
        return Compiler(self.judge, self.conn.dialect.name, dense=self.dense)

    def matches(self, query: q.Query) -> Select[Any]:
        compiled = self._compiler().compile(query)
        return select(literal(1)).select_from(compiled.source).where(self.scope, compiled.where)

    def count(self, matches: Select[Any], cap: int | None) -> tuple[int, bool]:
        """How many rows ``matches`` selects, and whether that is exact: with a ``cap`` the
        count stops there (a lower bound, still past the page)."""
        counted = matches if cap is None else matches.limit(cap)
        total = self.conn.execute(select(func.count()).select_from(counted.subquery()))
        n = int(total.scalar_one())
        return n, cap is None or n < cap

    def page(
        self, query: q.Query, offset: int, limit: int, extra: Any = None
    ) -> list[tuple[int, int]]:
        """(row id, number) of one page of ``query``'s matches in its order."""
        compiler = self._compiler()
        compiled = compiler.compile(query)
        where = and_(self.scope, compiled.where)
        if extra is not None:  # may join one more table: select from the compiler's source
            where = and_(where, extra(compiler))
        c = experiments.c
        ids = select(c.id, c.number).select_from(compiler.source).where(where)
        ids = ids.order_by(*compiled.order_by).offset(offset).limit(limit)
        return [(int(a), int(b)) for a, b in self.conn.execute(ids).all()]

    def split_page(
        self, query: q.Query, f: q.Field, offset: int, limit: int
    ) -> list[tuple[int, int]]:
        """The page read as experiments with a value of ``f`` (in index order), then without."""
        present: q.Expr = q.Comparison(f, ">=", -math.inf)
        holding = q.Query(present if query.filter is None else q.And(query.filter, present),
                          query.order_by)  # fmt: skip
        rows = self.page(holding, offset, limit)
        if len(rows) == limit:
            return rows
        held = offset + len(rows) if rows else self.count(self.matches(holding), offset)[0]
        lacking = q.Query(query.filter, query.order_by[1:])
        more = self.page(lacking, max(0, offset - held), limit - len(rows), extra=_missing(f))
        return rows + more


def _missing(f: q.Field) -> Any:
    def where(compiler: Compiler) -> ColumnElement[bool]:
        return compiler.number(f).is_(None)

    return where


def _dense(conn: Connection, pid: int, rows: int) -> bool:
    """Whether walking a metric's index in order (visiting every project's rows) finds a page
    sooner than reading the project's own rows: it visits about ``rows / share`` entries per
    clause (a quarter of the experiments passing the others, guessed), the project's rows cost
    ``share * table``; two index reads (its highest number, the table's highest id)."""
    c = experiments.c
    mine = conn.execute(select(func.max(c.number)).where(c.project_id == pid)).scalar() or 0
    every = conn.execute(select(func.max(c.id))).scalar() or 0
    return bool(mine * mine >= 4 * rows * every)

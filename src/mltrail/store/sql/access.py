"""Who may touch what, and turning public ids into row ids.

Every project-bound store call goes through :func:`check_project` or :func:`experiment_pk`,
so membership is enforced in one place. An unscoped store (embedded, single user) and admins
see everything. A job's token (a scope with a :class:`~mltrail.core.types.JobGrant`) sees only
its job's project, and writes only its job's experiment: a write transaction reaching any other
experiment, or a project-level write (new experiments, jobs, members), is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    true,
    update,
)

from mltrail.core import validation
from mltrail.core.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from mltrail.core.types import JobGrant, User
from mltrail.core.wire import parse_json
from mltrail.store.sql.engine import Database, DriverStatement, in_write
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.tables import experiments, project_members, projects


@dataclass(frozen=True)
class Scope:
    """The user a store acts for; ``None`` is the embedded single user. ``grant`` limits a
    job's token to its project and experiment."""

    user: User | None = None
    grant: JobGrant | None = None

    @property
    def sees_all(self) -> bool:
        return self.grant is None and (self.user is None or self.user.is_admin)

    def visible_projects(self) -> ColumnElement[bool]:
        """A WHERE clause on ``projects`` keeping the projects this scope may see."""
        if self.grant is not None:
            return projects.c.id == self.grant.project_id
        if self.sees_all:
            return true()
        assert self.user is not None
        members = select(project_members.c.project_id).where(
            project_members.c.user_id == self.user.id
        )
        return projects.c.id.in_(members)


class SqlNoun:
    """What every ``Sql<Noun>`` half of SqlStore shares: the database and the user's scope.

    Each Store method opens one transaction (``self._db.write()`` / ``read()``) and calls the
    noun module's functions, which take the connection, so one noun's function can run inside
    another noun's transaction (a job submission creates its experiment).
    """

    _db: Database
    _scope: Scope

    def _now(self) -> float:
        return float(self._db.clock())

    def _judge(self) -> Judge:
        """Now, and the store's ``crash_after``: what reads judge liveness by."""
        return Judge(self._now(), self._db.crash_after)


def check_project(conn: Connection, scope: Scope, project_id: Any) -> int:
    """The project's id once it is known to exist and be visible.

    Raises:
        NotFoundError: no such project (field ``project``).
        PermissionDeniedError: the user is not a member (field ``project``).
    """
    pid = validation.require_int(project_id, "project", minimum=1)
    if pid > validation.MAX_DB_ID:  # PostgreSQL would refuse to compare it: it names nothing
        raise NotFoundError(f"project {pid} does not exist", "project")
    if scope.grant is not None:
        return _check_granted_project(conn, scope.grant, pid)
    query = select(projects.c.id)
    if not scope.sees_all:
        assert scope.user is not None
        member = (
            select(project_members.c.user_id)
            .where(project_members.c.project_id == projects.c.id)
            .where(project_members.c.user_id == scope.user.id)
            .exists()
        )
        query = select(projects.c.id, member)
    row = conn.execute(query.where(projects.c.id == pid)).first()
    if row is None:
        raise NotFoundError(f"project {pid} does not exist", "project")
    if not scope.sees_all and not row[1]:
        raise PermissionDeniedError(f"not a member of project {pid}", "project")
    return pid


def experiment_pk(
    conn: Connection, scope: Scope, project_id: Any, experiment_id: Any, *, write: bool = False
) -> int:
    """The surrogate key of (project, experiment number), after the access check; with
    ``write``, only while the project is not deleted (as MLflow refuses writes to the runs of a
    deleted experiment), checked in the same query.

    One query on the hot path; the precise error is worked out only when it finds nothing.

    Raises:
        NotFoundError: unknown project or experiment (field ``project`` / ``experiment``).
        PermissionDeniedError: the user is not a member of the project.
        ConflictError: ``write`` to an experiment of a deleted project (field ``project``).
    """
    pid = validation.require_int(project_id, "project", minimum=1)
    number = validation.require_int(experiment_id, "experiment", minimum=1)
    if max(pid, number) > validation.MAX_DB_ID:  # names nothing: PostgreSQL refuses to compare
        check_project(conn, scope, pid)  # a project past 32 bits: not found
        raise NotFoundError(f"experiment {number} does not exist in project {pid}", "experiment")
    if scope.grant is not None:
        if pid != scope.grant.project_id:
            raise PermissionDeniedError(
                f"a job's token reaches only project {scope.grant.project_id}", "project"
            )
        check_granted_write(conn, scope, pid, number)
    params = {"pid": pid, "number": number}
    if not scope.sees_all:
        assert scope.user is not None
        params["user"] = scope.user.id
    found = _PK_QUERIES[scope.sees_all, write].first(conn, params)  # SQLite: see DriverStatement
    if found is None:
        _refuse_missing(conn, scope, pid, number, write)
    return int(found[0])


def _refuse_missing(conn: Connection, scope: Scope, pid: int, number: int, write: bool) -> NoReturn:
    """Why (project, experiment) was not found, as the error to raise."""
    check_project(conn, scope, pid)
    deleted_at = conn.execute(select(projects.c.deleted_at).where(projects.c.id == pid)).scalar()
    if write and deleted_at is not None:
        raise ConflictError(
            f"project {pid} is deleted: its experiments take no writes; restore it first",
            "project",
        )
    raise NotFoundError(f"experiment {number} does not exist in project {pid}", "experiment")


ACTIVITY_RESOLUTION = 1.0  # seconds: see _TOUCH_ANY_STATEMENT


def touched_experiment_pk(
    conn: Connection, scope: Scope, project_id: Any, experiment_id: Any, *, now: float
) -> int:
    """:func:`experiment_pk` for a write that marks the experiment's last activity
    (``updated_at``, to :data:`ACTIVITY_RESOLUTION`): one ``UPDATE ... RETURNING`` finds it,
    checks membership and touches it,
    which is what an append of one point costs most in statements. The precise error is worked
    out by :func:`experiment_pk` when it finds nothing (and the transaction rolls back).
    """
    pid = validation.require_int(project_id, "project", minimum=1)
    number = validation.require_int(experiment_id, "experiment", minimum=1)
    if scope.grant is not None or max(pid, number) > validation.MAX_DB_ID:
        pk = experiment_pk(conn, scope, pid, number, write=True)  # a job's checks, or the error
        conn.execute(update(experiments).where(experiments.c.id == pk).values(updated_at=now))
        return pk
    params: dict[str, Any] = {"b_pid": pid, "b_number": number, "b_now": now}
    if not scope.sees_all:
        assert scope.user is not None
        params["b_uid"] = scope.user.id
    touch = _TOUCH_ANY if scope.sees_all else _TOUCH_MEMBER
    found = touch.first(conn, params)  # on SQLite through the driver: see DriverStatement
    return int(found[0]) if found else experiment_pk(conn, scope, pid, number, write=True)


# the experiment's project is not deleted: a primary-key probe inside the one lookup
_LIVE_PROJECT = (
    select(projects.c.id)
    .where(projects.c.id == experiments.c.project_id, projects.c.deleted_at.is_(None))
    .exists()
)


def _pk_query(sees_all: bool, write: bool) -> Select[Any]:
    query = select(experiments.c.id).where(
        experiments.c.project_id == bindparam("pid"), experiments.c.number == bindparam("number")
    )
    if not sees_all:
        members = select(project_members.c.project_id).where(
            project_members.c.user_id == bindparam("user")
        )
        query = query.where(experiments.c.project_id.in_(members))
    return query.where(_LIVE_PROJECT) if write else query


# built once (for a scope that sees every project or not, to read or to write): building the
# statement and its cache key each time cost five times running it
_PK_QUERIES = {(sees_all, write): DriverStatement(_pk_query(sees_all, write))
               for sees_all in (False, True) for write in (False, True)}  # fmt: skip

# The last activity is kept to the second: a time set less than a second ago is left as it is,
# and SQLite writes no page for an update that changes no byte of the row (one WAL page of the
# 6-7 a one-point append wrote, every append).
_RECENT = and_(
    experiments.c.updated_at <= bindparam("b_now"),
    experiments.c.updated_at > bindparam("b_now") - literal_column(repr(ACTIVITY_RESOLUTION)),
)
_TOUCH_ANY_STATEMENT = (
    update(experiments)
    .where(experiments.c.project_id == bindparam("b_pid"))
    .where(experiments.c.number == bindparam("b_number"))
    .where(_LIVE_PROJECT)
    .values(updated_at=case((_RECENT, experiments.c.updated_at), else_=bindparam("b_now")))
    .returning(experiments.c.id)
)
_TOUCH_ANY = DriverStatement(_TOUCH_ANY_STATEMENT)
_TOUCH_MEMBER = DriverStatement(
    _TOUCH_ANY_STATEMENT.where(
        experiments.c.project_id.in_(
            select(project_members.c.project_id).where(
                project_members.c.user_id == bindparam("b_uid")
            )
        )
    )
)


def refuse_job_token(scope: Scope, what: str) -> None:
    """Refuse an operation no job's token may do (creating projects, running agents, ...).

    Raises:
        PermissionDeniedError: (field ``token``) when the scope is a job's.
    """
    if scope.grant is not None:
        raise PermissionDeniedError(f"a job's token cannot {what}", "token")


def _check_granted_project(conn: Connection, grant: JobGrant, pid: int) -> int:
    """A job's token names a project: its own, and only to read."""
    if pid != grant.project_id:
        raise PermissionDeniedError(
            f"a job's token reaches only project {grant.project_id}", "project"
        )
    if in_write(conn):
        raise PermissionDeniedError(
            f"a job's token writes only to its own experiment ({grant.project_id}/{grant.experiment_id})",
            "project",
        )
    return pid


def check_granted_write(
    conn: Connection, scope: Scope, project_id: int, experiment_id: int
) -> None:
    """In a write transaction, refuse a job's token any experiment but its job's own.

    Raises:
        PermissionDeniedError: (field ``experiment``).
    """
    grant = scope.grant
    if grant is None or not in_write(conn):
        return
    if (project_id, experiment_id) != (grant.project_id, grant.experiment_id):
        raise PermissionDeniedError(
            f"a job's token writes only to its own experiment ({grant.project_id}/{grant.experiment_id})",
            "experiment",
        )


MAX_JSON_DEPTH = 200  # orjson writes 254 levels, an answer's serialiser not many more


def dump_json(value: Any, field: str) -> str:
    """JSON text with Python's encoder, so NaN, infinities and huge numbers survive exactly.
    A value nested deeper than :data:`MAX_JSON_DEPTH` is refused: stored, it could not be
    sent back (the write succeeded and its answer failed)."""
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise ValidationError(f"is nested deeper than {MAX_JSON_DEPTH} levels", field)
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"must be JSON-serialisable: {exc}", field) from None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and mappings nest in ``value`` more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


_EMPTY_JSON = {"{}": dict, "[]": list}


def load_json(text: str | None, empty: Any = None) -> Any:
    """Parse JSON text; ``None`` gives ``empty``. Empty objects skip the parser (lists of
    1,000 experiments hold thousands of them).

    :func:`~mltrail.core.wire.parse_json`: orjson, or the standard library for what orjson
    would refuse or round (``NaN`` tokens, integers beyond 64 bits), so every value comes
    back exactly as :func:`dump_json` wrote it.
    """
    if text is None:
        return empty
    make = _EMPTY_JSON.get(text)
    if make is not None:
        return make()
    return parse_json(text)


def load_json_all(texts: Sequence[str]) -> list[Any]:
    """:func:`load_json` of each text (none None), the non-empty ones parsed in one call as
    the items of one JSON array: a page of 1,000 experiments' JSON columns parsed one text at
    a time paid the parser's set-up (and its integer scan) a thousand times over."""
    joined = ",".join([t for t in texts if t not in _EMPTY_JSON])
    values = iter(parse_json(f"[{joined}]") if joined else ())
    return [make() if (make := _EMPTY_JSON.get(t)) is not None else next(values) for t in texts]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def fetch_tuples(
    conn: Connection, query: Any, params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """All rows of ``query`` as the driver's plain tuples, in one ``fetchall``.

    Iterating a SQLAlchemy result fetches one row per call and wraps each in a Row (numpy
    probing Rows for array attributes is slower still); these columns need no result
    processing (floats, integers, bytes), so the driver's tuples are used as they come.
    ``params``: the values of the query's bound parameters (a statement built once).
    """
    result = conn.execute(query, params)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def among(column: ColumnElement[Any], ids: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """``column IN ids`` with the ids bound as one parameter: an array on PostgreSQL, a JSON
    array read by ``json_each`` on SQLite. An IN list binds a parameter per id, which
    SQLAlchemy expands (a name, a placeholder and a value each) at every execution: for the
    1,000 ids of a list page, in each of its three queries, a tenth of the page's read.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY  # 2 MB a SQLite server never needs

        return column == any_(bindparam(None, [int(i) for i in ids], type_=ARRAY(BigInteger)))
    listed: BindParameter[str] = bindparam(None, "[" + ",".join([str(int(i)) for i in ids]) + "]")
    return column.in_(select(literal_column("value")).select_from(func.json_each(listed)))

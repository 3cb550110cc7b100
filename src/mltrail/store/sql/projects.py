"""Projects: creation, listing with experiment counts and last activity, membership."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, select

from mltrail.core import validation
from mltrail.core.errors import NotFoundError
from mltrail.core.types import Project
from mltrail.store.projects import ProjectStore
from mltrail.store.sql.access import Scope, SqlNoun, check_project
from mltrail.store.sql.tables import experiments, project_members, projects, users


def create_project(
    conn: Connection, scope: Scope, now: float, display_name: Any, description: Any
) -> Project:
    """Insert a project; the scope's user (if any) becomes its first member."""
    name = validation.project_name(display_name)
    desc = validation.project_description(description)
    pid = conn.execute(
        projects.insert()
        .values(display_name=name, description=desc, created_at=now, next_experiment=1)
        .returning(projects.c.id)
    ).scalar_one()
    if scope.user is not None:
        conn.execute(project_members.insert().values(project_id=pid, user_id=scope.user.id))
    return Project(int(pid), name, desc, now, 0, None)


def _project_query(scope: Scope) -> Select[Any]:
    stats = (
        select(
            experiments.c.project_id,
            func.count().label("n"),
            func.max(experiments.c.updated_at).label("last"),
        )
        .group_by(experiments.c.project_id)
        .subquery()
    )
    return (
        select(projects, stats.c.n, stats.c.last)
        .outerjoin(stats, stats.c.project_id == projects.c.id)
        .where(scope.visible_projects())
        .order_by(projects.c.id)
    )


def _to_project(row: Any) -> Project:
    return Project(
        id=row.id,
        display_name=row.display_name,
        description=row.description,
        created_at=row.created_at,
        experiment_count=int(row.n or 0),
        last_activity=row.last,
    )


def list_projects(conn: Connection, scope: Scope) -> list[Project]:
    return [_to_project(r) for r in conn.execute(_project_query(scope))]


def get_project(conn: Connection, scope: Scope, project_id: Any) -> Project:
    pid = check_project(conn, scope, project_id)
    row = conn.execute(_project_query(scope).where(projects.c.id == pid)).one()
    return _to_project(row)


def find_project(conn: Connection, scope: Scope, display_name: str) -> Project | None:
    query = _project_query(scope).where(projects.c.display_name == display_name).limit(1)
    row = conn.execute(query).first()
    return None if row is None else _to_project(row)


def add_member(conn: Connection, scope: Scope, project_id: Any, user_name: str) -> None:
    """Make ``user_name`` a member (no-op when already one)."""
    pid = check_project(conn, scope, project_id)
    uid = conn.execute(select(users.c.id).where(users.c.name == user_name)).scalar()
    if uid is None:
        raise NotFoundError(f"user {user_name!r} does not exist", "user_name")
    exists = conn.execute(
        select(project_members.c.user_id).where(
            project_members.c.project_id == pid, project_members.c.user_id == uid
        )
    ).first()
    if exists is None:
        conn.execute(project_members.insert().values(project_id=pid, user_id=uid))


class SqlProjects(SqlNoun, ProjectStore):
    """The projects half of SqlStore."""

    def create_project(self, display_name: str, description: str = "") -> Project:
        with self._db.write() as conn:
            return create_project(conn, self._scope, self._now(), display_name, description)

    def list_projects(self) -> list[Project]:
        with self._db.read() as conn:
            return list_projects(conn, self._scope)

    def get_project(self, project_id: int) -> Project:
        with self._db.read() as conn:
            return get_project(conn, self._scope, project_id)

    def find_project(self, display_name: str) -> Project | None:
        with self._db.read() as conn:
            return find_project(conn, self._scope, display_name)

    def add_project_member(self, project_id: int, user_name: str) -> None:
        with self._db.write() as conn:
            add_member(conn, self._scope, project_id, user_name)

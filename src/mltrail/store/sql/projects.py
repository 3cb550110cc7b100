"""Projects: creation, listing with experiment counts and last activity, rename, delete and
restore (``deleted_at``), membership by consent (an invitation the invited user accepts;
administrators add members at once)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, delete, func, select, update

from mltrail.core import lifecycle, validation
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Invitation, Project
from mltrail.store.projects import ProjectStore
from mltrail.store.sql.access import Scope, SqlNoun, check_project, refuse_job_token
from mltrail.store.sql.tables import (
    experiments,
    project_invitations,
    project_members,
    projects,
    users,
)


def create_project(
    conn: Connection,
    scope: Scope,
    now: float,
    fields: tuple[Any, Any],
    unique_name: bool = False,
) -> Project:
    """Insert a project (``fields``: display name and description); the scope's user (if
    any) becomes its first member. ``unique_name``: see :func:`check_name_free`."""
    refuse_job_token(scope, "create projects")
    name = validation.project_name(fields[0])
    desc = validation.project_description(fields[1])
    if unique_name:
        check_name_free(conn, scope, name, None)
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
        deleted_at=row.deleted_at,
    )


def list_projects(conn: Connection, scope: Scope, include: Any = None) -> list[Project]:
    query = _project_query(scope)
    shown = lifecycle.project_include(include)
    if shown != "all":
        deleted = projects.c.deleted_at
        query = query.where(deleted.is_(None) if shown == "active" else deleted.is_not(None))
    return [_to_project(r) for r in conn.execute(query)]


def get_project(conn: Connection, scope: Scope, project_id: Any) -> Project:
    pid = check_project(conn, scope, project_id)
    row = conn.execute(_project_query(scope).where(projects.c.id == pid)).one()
    return _to_project(row)


def find_project(conn: Connection, scope: Scope, display_name: str) -> Project | None:
    """The project of that name, an active one first (a deleted one keeps its name)."""
    found = find_projects(conn, scope, display_name, limit=1)
    return found[0] if found else None


def find_projects(
    conn: Connection, scope: Scope, display_name: str, limit: int | None = None
) -> list[Project]:
    """The projects of that name, active ones first, each by id."""
    try:  # no project has a name it refuses; and PostgreSQL refuses NUL in a query's text
        validation.require_text(
            display_name, "display_name", max_len=validation.MAX_PROJECT_NAME_LEN
        )
    except ValidationError:
        return []
    query = (
        _project_query(scope)
        .where(projects.c.display_name == display_name)
        .order_by(None)
        .order_by(projects.c.deleted_at.is_not(None), projects.c.id)
        .limit(limit)
    )
    return [_to_project(r) for r in conn.execute(query)]


def check_name_free(conn: Connection, scope: Scope, name: str, project_id: int | None) -> None:
    """ConflictError (``display_name``) when another of the user's projects has the name.

    On PostgreSQL the check and the write that follows it hold a transaction lock, so two
    transactions naming projects alike queue here and the second sees the first's name
    (SQLite's write transactions are serialised already)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(58700002)")
    found = find_project(conn, scope, name)
    if found is not None and found.id != project_id:
        raise ConflictError(f"the name {name!r} is taken by project {found.id}", "display_name")


def update_project(
    conn: Connection,
    scope: Scope,
    project_id: Any,
    fields: tuple[Any, Any],
    unique_name: bool = False,
) -> Project:
    """Rename the project or change its description (any member; a deleted project first
    needs restoring: ConflictError, field ``project``)."""
    refuse_job_token(scope, "change projects")
    pid = check_project(conn, scope, project_id)
    display_name, description = fields
    values: dict[str, str] = {}
    if display_name is not None:
        values["display_name"] = validation.project_name(display_name)
        if unique_name:
            check_name_free(conn, scope, values["display_name"], pid)
    if description is not None:
        values["description"] = validation.project_description(description)
    if not values:
        raise ValidationError("nothing to change: give a display name or a description", "body")
    active = (projects.c.id == pid) & projects.c.deleted_at.is_(None)
    if not conn.execute(update(projects).where(active).values(**values)).rowcount:
        raise ConflictError(f"project {pid} is deleted; restore it first", "project")
    return get_project(conn, scope, pid)


def mark_project_deleted(
    conn: Connection, scope: Scope, now: float, project_id: Any, deleted: bool
) -> Project:
    """Delete (``deleted``) or restore the project: any member may. Its experiments keep
    their own states; while it is deleted it is hidden from listings and takes no new
    experiment and no write to its experiments (``access.experiment_pk(write=True)``). ConflictError (field ``project``) when it already is in that state."""
    refuse_job_token(scope, "delete or restore projects")
    pid = check_project(conn, scope, project_id)
    was = projects.c.deleted_at.is_(None) if deleted else projects.c.deleted_at.is_not(None)
    moved = conn.execute(
        update(projects)
        .where((projects.c.id == pid) & was)
        .values(deleted_at=now if deleted else None)
    ).rowcount
    if not moved:
        state = "already deleted" if deleted else "not deleted"
        raise ConflictError(f"project {pid} is {state}", "project")
    return get_project(conn, scope, pid)


def add_member(conn: Connection, scope: Scope, now: float, project_id: Any, user_name: Any) -> str:
    """Offer membership to ``user_name`` (``"invited"``), or add them at once when the scope
    sees all (``"added"``). A member's offer answers the same whatever the name names."""
    pid = check_project(conn, scope, project_id)
    name = validation.require_text(user_name, "user_name", min_len=1, max_len=140)
    uid = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
    if scope.sees_all:
        if uid is None:
            raise NotFoundError(f"user {name!r} does not exist", "user_name")
        _insert_member(conn, pid, uid)
        return "added"
    assert scope.user is not None
    if uid is not None and not _is_member(conn, pid, uid):
        conn.execute(delete(project_invitations).where(_invitation(pid, uid)))
        conn.execute(
            project_invitations.insert().values(
                project_id=pid, user_id=uid, invited_by=scope.user.id, created_at=now
            )
        )
    return "invited"


def _is_member(conn: Connection, pid: int, uid: int) -> bool:
    row = conn.execute(
        select(project_members.c.user_id).where(
            project_members.c.project_id == pid, project_members.c.user_id == uid
        )
    ).first()
    return row is not None


def _insert_member(conn: Connection, pid: int, uid: int) -> None:
    if not _is_member(conn, pid, uid):
        conn.execute(project_members.insert().values(project_id=pid, user_id=uid))


def _invitation(pid: int, uid: int) -> Any:
    return (project_invitations.c.project_id == pid) & (project_invitations.c.user_id == uid)


def list_invitations(conn: Connection, scope: Scope) -> list[Invitation]:
    refuse_job_token(scope, "read invitations")
    if scope.user is None:
        return []
    inviter = users.alias("inviter")
    rows = conn.execute(
        select(project_invitations, projects.c.display_name, inviter.c.name.label("by"))
        .join(projects, projects.c.id == project_invitations.c.project_id)
        .outerjoin(inviter, inviter.c.id == project_invitations.c.invited_by)
        .where(project_invitations.c.user_id == scope.user.id)
        .order_by(project_invitations.c.created_at, project_invitations.c.project_id)
    ).all()
    return [Invitation(r.project_id, r.display_name, r.by, r.created_at) for r in rows]


def take_invitation(conn: Connection, scope: Scope, project_id: Any, accept: bool) -> int:
    """Remove the user's pending invitation to the project, joining it when ``accept``.

    Raises:
        NotFoundError: no invitation is pending (field ``project``).
    """
    refuse_job_token(scope, "answer invitations")
    pid = validation.require_int(project_id, "project", minimum=1)
    if scope.user is None:  # the embedded single user is in every project already
        return pid
    invitation = _invitation(pid, scope.user.id)
    if not conn.execute(delete(project_invitations).where(invitation)).rowcount:
        raise NotFoundError(f"no invitation to project {pid} is pending", "project")
    if accept:
        _insert_member(conn, pid, scope.user.id)
    return pid


class SqlProjects(SqlNoun, ProjectStore):
    """The projects half of SqlStore."""

    def create_project(
        self, display_name: str, description: str = "", *, unique_name: bool = False
    ) -> Project:
        with self._db.write() as conn:
            fields = (display_name, description)
            return create_project(conn, self._scope, self._now(), fields, unique_name)

    def list_projects(self, include: str = "active") -> list[Project]:
        with self._db.read() as conn:
            return list_projects(conn, self._scope, include)

    def get_project(self, project_id: int) -> Project:
        with self._db.read() as conn:
            return get_project(conn, self._scope, project_id)

    def find_project(self, display_name: str) -> Project | None:
        with self._db.read() as conn:
            return find_project(conn, self._scope, display_name)

    def find_projects(self, display_name: str) -> list[Project]:
        with self._db.read() as conn:
            return find_projects(conn, self._scope, display_name)

    def update_project(
        self,
        project_id: int,
        display_name: str | None = None,
        description: str | None = None,
        *,
        unique_name: bool = False,
    ) -> Project:
        with self._db.write() as conn:
            fields = (display_name, description)
            return update_project(conn, self._scope, project_id, fields, unique_name)

    def delete_project(self, project_id: int) -> Project:
        with self._db.write() as conn:
            return mark_project_deleted(conn, self._scope, self._now(), project_id, True)

    def restore_project(self, project_id: int) -> Project:
        with self._db.write() as conn:
            return mark_project_deleted(conn, self._scope, self._now(), project_id, False)

    def add_project_member(self, project_id: int, user_name: str) -> str:
        with self._db.write() as conn:
            return add_member(conn, self._scope, self._now(), project_id, user_name)

    def list_invitations(self) -> list[Invitation]:
        with self._db.read() as conn:
            return list_invitations(conn, self._scope)

    def accept_invitation(self, project_id: int) -> Project:
        with self._db.write() as conn:
            pid = take_invitation(conn, self._scope, project_id, accept=True)
            return get_project(conn, self._scope, pid)

    def decline_invitation(self, project_id: int) -> None:
        with self._db.write() as conn:
            take_invitation(conn, self._scope, project_id, accept=False)

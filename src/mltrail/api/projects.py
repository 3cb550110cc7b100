"""``api.projects``: list, create, read, rename, delete and restore projects; add members."""

from __future__ import annotations

import builtins
from typing import Any

from mltrail.api.render import with_iso_times
from mltrail.core import codec, validation
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Project
from mltrail.store.base import Store


class ProjectsApi:
    """``api.projects``: the projects you are a member of."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self, include: str = "active") -> list[dict[str, Any]]:
        """Every project you are a member of, with experiment counts and last activity;
        ``include``: ``active`` (default), ``deleted`` or ``all``."""
        return [project_dict(p) for p in self._store.list_projects(include)]

    def create(self, display_name: str, description: str = "") -> dict[str, Any]:
        """Create a project (display name 1-140 characters, description up to 140)."""
        return project_dict(self._store.create_project(display_name, description))

    def get(self, project: int) -> dict[str, Any]:
        return project_dict(self._store.get_project(project_id(project)))

    def resolve(self, project: int | str) -> int:
        """The id of a project given as an id or a display name (NotFoundError if unknown)."""
        return resolve_project(self._store, project, create=False)

    def resolve_deleted(self, project: int | str) -> int:
        """The id of a deleted project given as an id or a display name: a name is looked up
        among deleted projects only (an active project may have taken it since).

        Raises:
            NotFoundError: no deleted project has that name.
            ValidationError: several deleted projects have it (give the id).
        """
        if not isinstance(project, str) or project.strip().isdigit():
            return self.resolve(project)
        name = validation.project_name(project)
        found = [p.id for p in self._store.list_projects("deleted") if p.display_name == name]
        if not found:
            raise NotFoundError(f"no deleted project named {name!r}", "project")
        return _the_one(found, name, "deleted projects")

    def update(
        self, project: int, display_name: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Rename a project and/or change its description (any member may)."""
        found = self._store.update_project(project_id(project), display_name, description)
        return project_dict(found)

    def delete(self, project: int) -> dict[str, Any]:
        """Delete a project (any member may): hidden from lists, restorable, nothing lost."""
        return project_dict(self._store.delete_project(project_id(project)))

    def restore(self, project: int) -> dict[str, Any]:
        """Restore a deleted project."""
        return project_dict(self._store.restore_project(project_id(project)))

    def add_member(self, project: int, user_name: str) -> str:
        """Offer another user membership; they become a member when they accept it
        (``"invited"``). An administrator adds them at once (``"added"``)."""
        return self._store.add_project_member(
            project_id(project),
            validation.require_text(user_name, "user_name", min_len=1, max_len=140),
        )

    def invitations(self) -> builtins.list[dict[str, Any]]:
        """Memberships offered to you and not yet accepted."""
        return [
            with_iso_times(codec.invitation_to_wire(i), ("created_at",))
            for i in self._store.list_invitations()
        ]

    def accept(self, project: int) -> dict[str, Any]:
        """Accept a project's invitation; returns the project."""
        return project_dict(self._store.accept_invitation(project_id(project)))

    def decline(self, project: int) -> None:
        """Decline a project's invitation."""
        self._store.decline_invitation(project_id(project))


def project_dict(p: Project) -> dict[str, Any]:
    """The project's wire record for people; its own id is ``project_id`` here (``id`` on the
    REST wire, the one exception to the key rule, see docs/architecture.md)."""
    record = codec.project_to_wire(p)
    record = {"project_id": record.pop("id"), **record}
    return with_iso_times(record, ("created_at", "last_activity", "deleted_at"))


def project_id(value: Any) -> int:
    """The contract's ``project`` parameter: required, an integer >= 1."""
    if value is None:
        raise ValidationError("is required", "project")
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        raise ValidationError(
            f"must be a project id (an integer), got the name {value[:140]!r}; "
            "experiments.search and the CLI's -p also take a name",
            "project",
        )
    return validation.require_int(value, "project", minimum=1)


def resolve_project(store: Store, project: int | str, *, create: bool = True) -> int:
    """The id of ``project``, given as an id or a display name.

    Args:
        store: where to look.
        project: an integer id (also as a digit string) or a display name.
        create: create a project with that display name when none exists (created with
            ``unique_name``: of two processes starting at once, one creates it and the other
            gets the same project).

    Returns:
        The project id.

    Raises:
        NotFoundError: an unknown id, or an unknown name with ``create=False``.
        ValidationError: neither an id nor a valid name; or, with ``create=False``, a name
            several projects have (:func:`named_project`). A run's ``start`` (``create``)
            takes the active project of the name with the lowest id, as it always has.
    """
    if isinstance(project, bool):
        raise ValidationError("must be a project id or display name, got bool", "project")
    if isinstance(project, int) or (isinstance(project, str) and project.strip().isdigit()):
        project_id = validation.require_int(project, "project", minimum=1)
        return store.get_project(project_id).id
    if not isinstance(project, str):
        raise ValidationError(
            f"must be a project id or display name, got {type(project).__name__}", "project"
        )
    name = validation.project_name(project)
    if not create:
        named = named_project(store, name)
        if named is None:
            raise NotFoundError(f"no project named {name!r}", "project")
        return named
    found = store.find_project(name)
    if found is not None:
        return found.id
    try:  # unique: of two processes starting at once, one creates it, the other finds it
        return store.create_project(name, unique_name=True).id
    except ConflictError:
        found = store.find_project(name)
        if found is None:
            raise
        return found.id


def named_project(store: Store, name: str) -> int | None:
    """The id of your project named ``name`` (the active one; with none active, the deleted
    one), or None when no project has it.

    Raises:
        ValidationError: (``project``) several projects have the name (active ones, or with
            none active, deleted ones): names may repeat, and taking one of them silently
            could act on the wrong project; the message names the ids to give instead.
    """
    found = store.find_projects(name)  # one query: a script may look names up in a loop
    active = [p.id for p in found if p.deleted_at is None]
    ids = active or [p.id for p in found]
    return _the_one(ids, name, "projects") if ids else None


def _the_one(ids: builtins.list[int], name: str, kind: str) -> int:
    if len(ids) > 1:
        listed = ", ".join(map(str, ids))
        raise ValidationError(
            f"{len(ids)} {kind} are named {name!r} (ids {listed}): give the id", "project"
        )
    return ids[0]

"""The projects noun of the Store: create, list, read, find by name, add members."""

from __future__ import annotations

import abc

from mltrail.core.types import Project


class ProjectStore(abc.ABC):
    """Projects the store's user is a member of (the embedded single user sees all)."""

    @abc.abstractmethod
    def create_project(self, display_name: str, description: str = "") -> Project:
        """Create a project; its creator becomes a member.

        Raises:
            ValidationError: a bad display name (1-140 characters) or description (0-140).
        """

    @abc.abstractmethod
    def list_projects(self) -> list[Project]:
        """Projects the user is a member of, with experiment counts and last activity."""

    @abc.abstractmethod
    def get_project(self, project_id: int) -> Project:
        """One project. Raises NotFoundError / PermissionDeniedError (field ``project``)."""

    @abc.abstractmethod
    def find_project(self, display_name: str) -> Project | None:
        """The user's project with that display name, if any (the SDK's "id or name")."""

    @abc.abstractmethod
    def add_project_member(self, project_id: int, user_name: str) -> None:
        """Let another user see and change the project (no-op when already a member)."""

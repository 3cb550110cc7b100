"""The projects noun of the Store: create, list, read, find by name, rename, delete and
restore, members by consent.

A member cannot add another user alone: ``add_project_member`` offers the membership, and it
starts when that user accepts (``accept_invitation``). Administrators (and the embedded single
user) add members at once. Offering it answers the same whether or not the user exists, so
user names cannot be enumerated through it.
"""

from __future__ import annotations

import abc

from mltrail.core.types import Invitation, Project


class ProjectStore(abc.ABC):
    """Projects the store's user is a member of (the embedded single user sees all)."""

    @abc.abstractmethod
    def create_project(
        self, display_name: str, description: str = "", *, unique_name: bool = False
    ) -> Project:
        """Create a project; its creator becomes a member.

        ``unique_name``: refused when the user already has a project of that name (deleted
        ones too, as :meth:`find_project` finds them), judged in the creating transaction: of
        two concurrent calls, one is refused (MLflow's experiment names are unique).

        Raises:
            ValidationError: a bad display name (1-140 characters) or description (0-140).
            ConflictError: (``display_name``) the name is taken, with ``unique_name``.
        """

    @abc.abstractmethod
    def list_projects(self, include: str = "active") -> list[Project]:
        """Projects the user is a member of, with experiment counts and last activity.

        Args:
            include: ``active`` (default), ``deleted`` or ``all``.

        Raises:
            ValidationError: (field ``include``) another word.
        """

    @abc.abstractmethod
    def get_project(self, project_id: int) -> Project:
        """One project. Raises NotFoundError / PermissionDeniedError (field ``project``)."""

    @abc.abstractmethod
    def find_project(self, display_name: str) -> Project | None:
        """The user's project with that display name, if any (the SDK's "id or name"); an
        active one before a deleted one (``deleted_at`` set), which keeps its name."""

    @abc.abstractmethod
    def find_projects(self, display_name: str) -> list[Project]:
        """Every project of the user's with that display name (names may repeat): active ones
        first, then deleted ones, each by id; one query, however many projects the user has."""

    @abc.abstractmethod
    def update_project(
        self,
        project_id: int,
        display_name: str | None = None,
        description: str | None = None,
        *,
        unique_name: bool = False,
    ) -> Project:
        """Rename the project and/or change its description. Any member may (and
        administrators); a job's token may not. ``unique_name``: refuse a name another of the
        user's projects has, as :meth:`create_project` does (ConflictError, ``display_name``).

        Raises:
            ValidationError: a bad name or description, or neither given.
            NotFoundError / PermissionDeniedError: (``project``) unknown, or not a member.
            ConflictError: (``project``) the project is deleted: restore it first.
        """

    @abc.abstractmethod
    def delete_project(self, project_id: int) -> Project:
        """Delete the project: it keeps everything, is hidden from :meth:`list_projects`
        (``include="deleted"`` shows it) and takes no new experiment and no write to its
        experiments until restored (ConflictError naming ``project``, as MLflow refuses writes to
        the runs of a deleted experiment; a write by weights hash leaves them out); reads,
        heartbeats and stop requests go on. Any member
        may (and administrators); a job's token may not.

        Raises:
            NotFoundError / PermissionDeniedError: (``project``) unknown, or not a member.
            ConflictError: (``project``) it is already deleted.
        """

    @abc.abstractmethod
    def restore_project(self, project_id: int) -> Project:
        """Make a deleted project active again; same rules as :meth:`delete_project`.

        Raises:
            ConflictError: (``project``) it is not deleted.
        """

    @abc.abstractmethod
    def add_project_member(self, project_id: int, user_name: str) -> str:
        """Offer ``user_name`` membership of the project (an administrator adds at once).

        Returns:
            ``"invited"`` (the user becomes a member on accepting; answered alike for a user
            that does not exist, or already is a member) or ``"added"`` (administrators).

        Raises:
            NotFoundError / PermissionDeniedError: the caller is not a member (``project``);
                an administrator naming an unknown user (``user_name``).
        """

    @abc.abstractmethod
    def list_invitations(self) -> list[Invitation]:
        """Memberships offered to the store's user and not yet accepted, oldest first."""

    @abc.abstractmethod
    def accept_invitation(self, project_id: int) -> Project:
        """Become a member of a project that offered it. NotFoundError (``project``) when no
        invitation to that project is pending."""

    @abc.abstractmethod
    def decline_invitation(self, project_id: int) -> None:
        """Drop a pending invitation. NotFoundError (``project``) when none is pending."""

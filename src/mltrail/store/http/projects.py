"""The projects half of HttpStore: ``/api/v1/projects``."""

from __future__ import annotations

from mltrail.core import codec
from mltrail.core.types import Invitation, Project
from mltrail.store.http.transport import HttpNoun
from mltrail.store.projects import ProjectStore


class HttpProjects(HttpNoun, ProjectStore):
    """The projects half of HttpStore: each :class:`ProjectStore` method is one request."""

    def create_project(
        self, display_name: str, description: str = "", *, unique_name: bool = False
    ) -> Project:
        body: dict[str, object] = {"display_name": display_name, "description": description}
        if unique_name:
            body["unique_name"] = True
        return codec.project_from_wire(self._http.call("POST", "/projects", body=body))

    def list_projects(self, include: str = "active") -> list[Project]:
        return [codec.project_from_wire(p) for p in self._get("/projects", include=include)]

    def get_project(self, project_id: int) -> Project:
        return codec.project_from_wire(self._get(f"/projects/{int(project_id)}"))

    def find_project(self, display_name: str) -> Project | None:
        found = self._get("/projects", display_name=display_name)
        return codec.project_from_wire(found[0]) if found else None

    def find_projects(self, display_name: str) -> list[Project]:
        found = self._get("/projects", display_name=display_name, include="all")
        return [codec.project_from_wire(p) for p in found]

    def update_project(
        self,
        project_id: int,
        display_name: str | None = None,
        description: str | None = None,
        *,
        unique_name: bool = False,
    ) -> Project:
        body: dict[str, object] = {"display_name": display_name, "description": description}
        if unique_name:
            body["unique_name"] = True
        path = f"/projects/{int(project_id)}"
        return codec.project_from_wire(self._http.call("PATCH", path, body=body, repeatable=True))

    def delete_project(self, project_id: int) -> Project:
        return codec.project_from_wire(self._http.call("DELETE", f"/projects/{int(project_id)}"))

    def restore_project(self, project_id: int) -> Project:
        path = f"/projects/{int(project_id)}/restore"
        return codec.project_from_wire(self._http.call("POST", path))

    def add_project_member(self, project_id: int, user_name: str) -> str:
        path = f"/projects/{int(project_id)}/members"
        return str(self._http.call("POST", path, body={"user_name": user_name})["membership"])

    def list_invitations(self) -> list[Invitation]:
        return [codec.invitation_from_wire(i) for i in self._get("/invitations")]

    def accept_invitation(self, project_id: int) -> Project:
        path = f"/projects/{int(project_id)}/invitation/accept"
        return codec.project_from_wire(self._http.call("POST", path, repeatable=True))

    def decline_invitation(self, project_id: int) -> None:
        self._http.call("DELETE", f"/projects/{int(project_id)}/invitation", repeatable=True)

"""``/api/v1/projects``: create, list (or find by name), read, rename, delete and restore;
members by consent (an offer the invited user accepts under ``/invitations``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from mltrail.core.codec import invitation_to_wire, project_to_wire
from mltrail.core.types import Project
from mltrail.server.deps import ProjectId, StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, MemberIn, ProjectIn, ProjectOut, ProjectPatch

router = APIRouter(tags=["projects"], responses=ERROR_RESPONSES)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(
    store: StoreDep,
    display_name: str | None = Query(None),
    include: str = Query("active", description="active, deleted or all"),
) -> list[dict]:
    """The user's projects (``include``: active, deleted or all); ``display_name`` selects the
    one with that name (an active one first), or with ``include=all`` every one of the name
    (active ones first, each by id)."""
    if display_name is not None and include == "all":
        projects: list[Project] = store.find_projects(display_name)
    elif display_name is not None:
        found = store.find_project(display_name)
        projects = [found] if found else []
    else:
        projects = store.list_projects(include)
    return [project_to_wire(p) for p in projects]


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectIn, store: StoreDep) -> dict:
    return project_to_wire(
        store.create_project(body.display_name, body.description, unique_name=body.unique_name)
    )


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project_id: ProjectId, store: StoreDep) -> dict:
    return project_to_wire(store.get_project(project_id))


@router.patch("/projects/{project_id}", response_model=ProjectOut)
def update_project(project_id: ProjectId, body: ProjectPatch, store: StoreDep) -> dict:
    """Rename a project or change its description (409 while it is deleted)."""
    return project_to_wire(
        store.update_project(
            project_id, body.display_name, body.description, unique_name=body.unique_name
        )
    )


@router.delete("/projects/{project_id}", response_model=ProjectOut)
def delete_project(project_id: ProjectId, store: StoreDep) -> dict:
    """Delete a project (restorable; 409 when it already is deleted)."""
    return project_to_wire(store.delete_project(project_id))


@router.post("/projects/{project_id}/restore", response_model=ProjectOut)
def restore_project(project_id: ProjectId, store: StoreDep) -> dict:
    """Restore a deleted project (409 when it is not deleted)."""
    return project_to_wire(store.restore_project(project_id))


class MemberOut(BaseModel):
    ok: bool = True
    membership: Literal["invited", "added"]


class InvitationOut(BaseModel):
    project_id: int
    display_name: str
    invited_by: str | None
    created_at: float


@router.post("/projects/{project_id}/members", response_model=MemberOut)
def add_member(project_id: ProjectId, body: MemberIn, store: StoreDep) -> dict:
    """Offer another user membership: ``invited`` until they accept (answered alike whether
    or not the name exists); an administrator adds them at once (``added``)."""
    return {"ok": True, "membership": store.add_project_member(project_id, body.user_name)}


@router.get("/invitations", response_model=list[InvitationOut])
def list_invitations(store: StoreDep) -> list[dict]:
    """Memberships offered to you and not yet accepted."""
    return [invitation_to_wire(i) for i in store.list_invitations()]


@router.post("/projects/{project_id}/invitation/accept", response_model=ProjectOut)
def accept_invitation(project_id: ProjectId, store: StoreDep) -> dict:
    """Become a member of a project that invited you (404 when no invitation is pending)."""
    return project_to_wire(store.accept_invitation(project_id))


@router.delete("/projects/{project_id}/invitation", status_code=204)
def decline_invitation(project_id: ProjectId, store: StoreDep) -> None:
    """Drop a pending invitation (404 when none is pending)."""
    store.decline_invitation(project_id)

"""``/api/v1/projects``: create, list (or find by name), read, add members."""

from __future__ import annotations

from fastapi import APIRouter, Query

from mltrail.core.codec import project_to_wire
from mltrail.core.types import Project
from mltrail.server.deps import ProjectId, StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, MemberIn, OkOut, ProjectIn, ProjectOut

router = APIRouter(tags=["projects"], responses=ERROR_RESPONSES)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(store: StoreDep, display_name: str | None = Query(None)) -> list[dict]:
    """The user's projects; ``display_name`` selects the one with that name."""
    if display_name is not None:
        found = store.find_project(display_name)
        projects: list[Project] = [found] if found else []
    else:
        projects = store.list_projects()
    return [project_to_wire(p) for p in projects]


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectIn, store: StoreDep) -> dict:
    return project_to_wire(store.create_project(body.display_name, body.description))


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project_id: ProjectId, store: StoreDep) -> dict:
    return project_to_wire(store.get_project(project_id))


@router.post("/projects/{project_id}/members", response_model=OkOut)
def add_member(project_id: ProjectId, body: MemberIn, store: StoreDep) -> dict:
    """Let another user see and change the project."""
    store.add_project_member(project_id, body.user_name)
    return {"ok": True}

"""``/api/v1/identity``: which store this server serves (SDK spools are keyed by it)."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core.version import __version__
from mltrail.server.deps import StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, IdentityOut

router = APIRouter(tags=["identity"], responses=ERROR_RESPONSES)


@router.get("/identity", response_model=IdentityOut)
def store_identity(store: StoreDep) -> dict:
    """The store's id (the same from every server over one database) and the version."""
    return {"store_id": store.store_identity(), "version": __version__}

"""``/api/v1/me``: who the token belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core.codec import user_to_wire
from mltrail.server.deps import StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, UserOut

router = APIRouter(tags=["users"], responses=ERROR_RESPONSES)


@router.get("/me", response_model=UserOut)
def read_me(store: StoreDep) -> dict:
    """The token's user (the local user in embedded mode)."""
    return user_to_wire(store.me())

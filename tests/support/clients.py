"""Raw REST clients for tests that check the HTTP surface itself (status codes, bodies)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def rest_client(url: str, token: str | None, timeout: float = 60.0) -> Iterator[httpx.Client]:
    """An httpx client on ``url``'s ``/api/v1`` with the token's Authorization header."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url + "/api/v1", headers=headers, timeout=timeout) as client:
        yield client


def error_of(response: httpx.Response, status: int = 422) -> dict:
    """The ``error`` object of an error answer, after checking its status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "field", "message"}
    return body["error"]

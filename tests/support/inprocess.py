"""The real server app in-process, reached through HttpStore's injectable httpx transport.

``inprocess_store(sql_store)`` gives an HttpStore whose requests go through the real client code
(request building, retries, decoding) and the real FastAPI app (validation, auth, error mapping)
without a socket: the server side runs on ``sql_store``, in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore


class AppTransport(httpx.BaseTransport):
    """A sync httpx transport that hands each request to the app through Starlette's
    TestClient (httpx's own ASGITransport is async-only; the TestClient is built on another
    HTTP client package, so requests and responses are copied across)."""

    def __init__(self, client: TestClient) -> None:
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._client.request(
            request.method,
            str(request.url),
            content=request.read(),
            headers=dict(request.headers),
        )
        return httpx.Response(
            answer.status_code, headers=list(answer.headers.items()), content=answer.content
        )


@contextmanager
def inprocess_store(sql_store: SqlStore, token: str | None = None) -> Iterator[HttpStore]:
    """An HttpStore on the app served from ``sql_store``; ``token`` None: a new user's token."""
    app = create_app(Settings(), sql_store, allowed_hosts=["localhost"])
    if token is None:
        import uuid

        name = f"inprocess-{uuid.uuid4().hex[:10]}"
        sql_store.auth.create_user(name)
        token = sql_store.auth.create_token(name)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        store = HttpStore("http://localhost", token, transport=AppTransport(client), retries=0)
        try:
            yield store
        finally:
            store.close()


@contextmanager
def app_client(sql_store: SqlStore) -> Iterator[TestClient]:
    """A TestClient on the app served from ``sql_store`` without authentication (raw routes)."""
    app = create_app(Settings(), sql_store, require_auth=False, allowed_hosts=["testserver"])
    with TestClient(app) as client:
        yield client


def ok_json(response: httpx.Response) -> Any:
    """The JSON body of a 200 answer (the body is shown when the status differs)."""
    assert response.status_code == 200, response.text
    return response.json()

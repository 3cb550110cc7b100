"""The /api/v1 nouns are included in the order of their traffic (server/app.py), which is
safe only while no request path and method is answered by routes of two nouns."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import compile_path
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.sql import SqlStore


def test_no_request_matches_routes_of_two_nouns(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'routes.db'}")
    app = create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver"])
    with TestClient(app) as client:
        paths = client.get("/api/v1/openapi.json").json()["paths"]
    store.close()
    routes = [
        (path, method, tuple(operation.get("tags", ())), compile_path(path)[0])
        for path, methods in paths.items()
        if path.startswith("/api/v1/")
        for method, operation in methods.items()
    ]
    assert len({tags for _, _, tags, _ in routes}) > 5  # the nouns are told apart by tag
    # every path's sample (its parameters filled in) reaches its own route
    assert all(pattern.fullmatch(re.sub(r"\{[^}]+\}", "1", p)) for p, _, _, pattern in routes)
    shared = []
    for path, method, tags, _ in routes:
        for fill in ("1", "latest", "read"):
            sample = re.sub(r"\{[^}]+\}", fill, path)
            shared += [
                (method, path, other)
                for other, other_method, other_tags, pattern in routes
                if other != path
                and other_method == method
                and other_tags != tags
                and pattern.fullmatch(sample)
            ]
    assert shared == []

"""server/ui.py over a real server: the app shell, assets, security headers and API 404s."""

from __future__ import annotations

import httpx
import pytest

from mltrail.server.ui import CONTENT_SECURITY_POLICY, UI_DIR, resolve_asset
from support.servers import ServerProcess


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    """The session's shared server: these tests only read what it serves (a start costs
    seconds each)."""
    return shared_server


def test_index_has_strict_csp_and_loads_the_module(server) -> None:
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "style-src 'self'" in csp and "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/ui/js/app.js">' in response.text


def test_view_paths_fall_back_to_the_app(server) -> None:
    for path in ("/projects", "/projects/3", "/projects/3/experiments/5", "/login"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200, path
        assert 'id="app"' in response.text
        assert "content-security-policy" in response.headers


def test_assets_are_served_with_module_friendly_types(server) -> None:
    js = httpx.get(server.url + "/ui/js/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    css = httpx.get(server.url + "/ui/vendor/uplot/uPlot.min.css")
    assert css.headers["content-type"].startswith("text/css")
    assert "uplot" in css.text
    licence = httpx.get(server.url + "/ui/vendor/uplot/LICENSE")
    assert "MIT License" in licence.text and "Leon Sorokin" in licence.text


def test_unknown_asset_and_traversal_are_404(server) -> None:
    assert httpx.get(server.url + "/ui/js/nope.js").status_code == 404
    assert httpx.get(server.url + "/ui/%2e%2e/server/ui.py").status_code == 404
    assert resolve_asset("../server/ui.py") is None
    assert resolve_asset("js/app.js") == (UI_DIR / "js" / "app.js").resolve()


def test_api_paths_are_not_swallowed_by_the_ui(server) -> None:
    response = httpx.get(server.url + "/api/v1/no-such-route")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == "not_found"
    me = httpx.get(server.url + "/api/v1/me")
    assert me.status_code == 401  # the UI never opens the API up

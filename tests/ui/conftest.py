"""Browser-test fixtures: a real ``mltrail server`` and headless Chromium (Debian's package,
driven by Playwright) pointed at it.

Fixtures:
    ui_server: a running server (``url``, admin ``token``) plus ``store`` (SqlStore scoped to
        its admin) and ``api`` (the contract's Api over it) to add data while a page is open.
    embedded_ui: the same app as ``mltrail ui`` serves it (no token), in a thread.
    browser: one Chromium for the session (skips when /usr/bin/chromium is missing, outside CI).
    page: a fresh page signed in with the admin token; ``page.errors`` collects page errors,
        console errors and dialogs (an XSS would show up there).
    anonymous_page: the same without a token.
    sweep: a 30-run sweep on the shared server, seeded once per session (read-only for tests).
    many_runs: (project, ids) of 100 short runs, seeded once per session (read-only).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_seed import Sweep, UiServer, add_many_runs, add_sweep, open_page

from mltrail.api import Api
from mltrail.store.sql import SqlStore
from support.servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _ui_server(server: ServerProcess) -> Iterator[UiServer]:
    store = SqlStore.open(server.db_url)
    scoped = store.as_user(store.auth.get_user("admin"))
    yield UiServer(server.url, server.admin_token, scoped, Api(scoped))
    store.close()


@pytest.fixture
def ui_server(shared_server: ServerProcess) -> Iterator[UiServer]:
    """The session's shared server (support.servers); each test works in projects of its own."""
    yield from _ui_server(shared_server)


@pytest.fixture(scope="session")
def seed_server(shared_server: ServerProcess) -> Iterator[UiServer]:
    """The shared server, for data seeded once per session."""
    yield from _ui_server(shared_server)


@pytest.fixture(scope="session")
def sweep(seed_server: UiServer) -> Sweep:
    return add_sweep(seed_server)


@pytest.fixture(scope="session")
def many_runs(seed_server: UiServer) -> tuple[int, list[int]]:
    return add_many_runs(seed_server, 100)


@pytest.fixture
def empty_ui_server(server: ServerProcess) -> Iterator[UiServer]:
    """A server of its own, on an empty database (for empty-state checks)."""
    yield from _ui_server(server)


# One Chromium per module, not per session: Playwright's sync API keeps its event loop marked as
# running in the main thread while it lives, and under pytest-xdist a worker goes on to other
# modules (tests/server's run asyncio.run) after a browser module. A launch takes about 1 s.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, ui_server: UiServer) -> Iterator[Any]:
    yield from open_page(browser, ui_server.token)


@pytest.fixture
def anonymous_page(browser: Any, ui_server: UiServer) -> Iterator[Any]:
    yield from open_page(browser, None)


@pytest.fixture
def embedded_ui(sqlite_url: str) -> Iterator[UiServer]:
    """The app as ``mltrail ui`` runs it (no token), under uvicorn in a thread."""
    import threading

    import uvicorn

    from mltrail.config import Settings
    from mltrail.server import create_app
    from support.servers import free_port

    store = SqlStore.open(sqlite_url)
    port = free_port()
    app = create_app(Settings.from_env(), store, require_auth=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield UiServer(f"http://127.0.0.1:{port}", "", store, Api(store))
    server.should_exit = True
    thread.join(10)
    store.close()

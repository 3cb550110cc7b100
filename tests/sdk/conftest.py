"""Fixtures for SDK tests: settings on a temp home, the embedded store, a training loop."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mltrail.config import Settings


@pytest.fixture
def settings(migrated_home: Path) -> Settings:
    """Strict embedded settings on the test's MLTRAIL_HOME (set by the autouse fixture), its
    database already migrated (a copy of the session's)."""
    return Settings.from_env().with_(strict=True)


@pytest.fixture
def store(settings: Settings) -> Iterator[object]:
    """The real embedded SqlStore the SDK writes to."""
    from mltrail.store import open_store

    with open_store(settings) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _keep_root_logger() -> Iterator[None]:
    """Console capture adds a handler to the root logger; make sure each test removes it."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    assert root.handlers == before, "a test left a capture handler on the root logger"

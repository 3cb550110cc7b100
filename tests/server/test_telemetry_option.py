"""FastAPI's native OpenTelemetry is decided once, as the app is built: with no provider
configured then, no request asks the providers again (FastAPI asked all three per request)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.sql import SqlStore

pytestmark = pytest.mark.skipif(
    "telemetry" not in inspect.signature(FastAPI.__init__).parameters,
    reason="this FastAPI has no native telemetry",
)


class _Configured:
    """Stands for a tracer provider someone configured (any class but OpenTelemetry's proxy)."""


def _asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: bool) -> int:
    """How often 5 requests asked for the global tracer provider."""
    from opentelemetry import trace

    real = trace.get_tracer_provider
    store = SqlStore.open(f"sqlite:///{tmp_path / 'otel.db'}")
    if configured:
        monkeypatch.setattr(trace, "get_tracer_provider", _Configured)
    app = create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver"])
    asked: list[int] = []

    def counting() -> object:
        asked.append(1)
        return real()  # the unconfigured proxy: FastAPI instruments nothing

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    with TestClient(app) as client:
        for _ in range(5):
            assert client.get("/healthz").json() == {"status": "ok"}
    store.close()
    return len(asked)


def test_no_request_asks_the_providers_when_none_was_configured(tmp_path, monkeypatch) -> None:
    assert _asks(tmp_path, monkeypatch, configured=False) == 0


def test_a_provider_configured_before_the_app_keeps_fastapis_telemetry(
    tmp_path, monkeypatch
) -> None:
    assert _asks(tmp_path, monkeypatch, configured=True) >= 5


def test_fastapis_auto_configured_telemetry_is_left_to_fastapi(tmp_path, monkeypatch) -> None:
    """FASTAPI_OTEL_AUTO_CONFIGURE=true: FastAPI configures providers from the environment as
    the app starts, after it is built; telemetry decided at build turned them off for good."""
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert _asks(tmp_path, monkeypatch, configured=False) >= 5

"""Request deadlines against a real server that drips its answer one byte at a time, each byte
well within any per-read timeout (tests/support/drip.py): a call ends within its deadline with
an error naming the server, retries and Retry-After still work inside it, and a download that is
slow but steady outlives the deadline while a dripping one does not."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import httpx
import pytest

from mltrail.config import Settings
from mltrail.core.errors import TransportError
from mltrail.store import open_store
from mltrail.store.http import HttpStore
from mltrail.store.http.deadline import FLOOR_BYTES, Progress, is_bound
from support.drip import drip_server, elapsed
from support.factories import ramp_batch

DEADLINE = 1.5
# thread start-up and a machine loaded by other suites; without a deadline each of these calls
# would take minutes at least (4,096 bytes at 0.2 s, or 1 MiB at 0.1 s)
SLACK = 5.0
WINDOW = 2.0  # the downloads' deadline: their head must come within it on a loaded machine


@pytest.mark.parametrize("retries", [0, 3])
def test_a_dripping_server_fails_the_call_within_its_deadline(retries: int) -> None:
    """The per-read timeout (60 s) never fires: a byte comes every 0.2 s. Retries are taken
    inside the deadline, not after it (3 retries still end at the deadline)."""
    with (
        drip_server() as server,
        HttpStore(server.url, "t", retries=retries, deadline=DEADLINE) as store,
    ):
        start = time.monotonic()
        with pytest.raises(TransportError) as caught:
            store.get_project(1)
        took = elapsed(start)
    message = str(caught.value)
    assert f"the mltrail server at {server.url} was too slow" in message
    assert "deadline of 1.5 s" in message and "MLTRAIL_REQUEST_DEADLINE" in message
    assert caught.value.outage  # what the SDK spools for
    assert DEADLINE - 0.1 <= took <= DEADLINE + SLACK
    assert server.connections == 1  # no retry fits in what the drip left


def test_a_point_batch_through_the_lean_poster_ends_within_its_deadline() -> None:
    """Point batches go through :class:`~mltrail.store.http.poster.Poster` (its own socket,
    the kernel's timeouts): it keeps the deadline too."""
    with drip_server() as server, HttpStore(server.url, "t", retries=2, deadline=DEADLINE) as store:
        assert store._http._poster is not None  # the lean path is the one tested
        start = time.monotonic()
        with pytest.raises(TransportError, match="was too slow: no whole answer within") as caught:
            store.append_points(1, 1, ramp_batch(1))
        took = elapsed(start)
    assert server.url.removeprefix("http://") in str(caught.value)
    assert DEADLINE - 0.1 <= took <= DEADLINE + SLACK


def test_retry_after_is_honoured_inside_the_deadline() -> None:
    """A 503 asking for 1 s is waited out and the request sent again, then that attempt
    drips until the deadline ends the call: two connections, about the deadline in all."""
    busy = ("answer", 503, {"Retry-After": "1"}, b"{}")
    with (
        drip_server(busy, ("drip", 0.2)) as server,
        HttpStore(server.url, "t", retries=3, deadline=3.0) as store,
    ):
        start = time.monotonic()
        with pytest.raises(TransportError, match="deadline of 3 s"):
            store.get_project(1)
        took = elapsed(start)
    assert server.connections == 2
    assert 3.0 - 0.1 <= took <= 3.0 + SLACK


def test_a_retry_after_longer_than_the_deadline_left_returns_the_answer_at_once() -> None:
    busy = ("answer", 503, {"Retry-After": "4"}, b"{}")
    with drip_server(busy) as server, HttpStore(server.url, "t", retries=5, deadline=3.0) as store:
        start = time.monotonic()
        with pytest.raises(TransportError) as caught:
            store.get_project(1)
        took = elapsed(start)
    assert caught.value.answered == 503 and caught.value.retry_after == 4.0
    assert server.connections == 1 and took < 1.0


def _artifact_head(size: int) -> dict[str, str]:
    record = {
        "project": 1,
        "experiment": 1,
        "path": "model.bin",
        "sha256": hashlib.sha256(b"x" * size).hexdigest(),
        "size": size,
        "media_type": "application/octet-stream",
        "created_at": 0.0,
    }
    text = base64.urlsafe_b64encode(json.dumps(record).encode()).decode().rstrip("=")
    return {"Content-Type": "application/octet-stream", "X-Mltrail-Artifact": text}


def _download(url: str, *, lean: bool) -> bytes:
    """An artifact's bytes through the standard library's connection (``lean``) or httpx."""
    transport = None if lean else httpx.HTTPTransport()
    with HttpStore(url, "t", retries=0, deadline=WINDOW, transport=transport) as store:
        assert (store._http.lean is not None) is lean
        assert is_bound(store._http.client)
        with store.open_artifact(1, 1, "model.bin") as reader:
            return b"".join(reader.chunks)


@pytest.mark.parametrize("lean", [True, False], ids=["http.client", "httpx"])
def test_a_slow_but_steady_download_outlives_the_deadline(lean: bool) -> None:
    """96 KiB every 0.4 s for 4.8 s: over the 2 s deadline, never under the floor."""
    size = 12 * 96 * 1024
    plan = ("stream", _artifact_head(size), 96 * 1024, 0.4, size)
    with drip_server(plan) as server:
        start = time.monotonic()
        data = _download(server.url, lean=lean)
        took = elapsed(start)
    assert len(data) == size and took > 2 * WINDOW


@pytest.mark.parametrize("lean", [True, False], ids=["http.client", "httpx"])
def test_a_dripping_download_fails_within_a_window(lean: bool) -> None:
    size = 1024 * 1024
    with drip_server(("stream", _artifact_head(size), 1, 0.1, size)) as server:
        start = time.monotonic()
        with pytest.raises(TransportError, match="less than 64 KiB in 2 s") as caught:
            _download(server.url, lean=lean)
        took = elapsed(start)
        sent = server.sent
    assert server.url.removeprefix("http://") in str(caught.value)
    assert took <= WINDOW + 0.1 + SLACK and sent < FLOOR_BYTES


def test_a_window_met_opens_a_new_one_and_silence_is_left_to_the_read_timeout() -> None:
    pace = Progress(10.0, floor=100)
    assert pace.remaining() is None  # nothing moved yet: the read timeout's wait
    pace.moved(60)
    left = pace.remaining()
    assert left is not None and 9.0 < left <= 10.0
    pace.moved(40)  # the floor met: the window closes
    assert pace.remaining() is None


def test_the_deadline_comes_from_settings_and_the_config_file(tmp_path) -> None:
    home = {"MLTRAIL_HOME": str(tmp_path), "MLTRAIL_URL": "http://127.0.0.1:9"}
    assert Settings.from_env(home).request_deadline is None
    settings = Settings.from_env({**home, "MLTRAIL_REQUEST_DEADLINE": "7.5"})
    assert settings.request_deadline == 7.5
    assert Settings.from_env(settings.to_env()) == settings
    with open_store(settings) as store:
        assert store._http.deadline == 7.5  # type: ignore[attr-defined]
    with open_store(Settings.from_env(home), http_deadline=30.0) as store:
        assert store._http.deadline == 30.0  # type: ignore[attr-defined]
    (tmp_path / "config.toml").write_text("request_deadline = 0\n")
    with pytest.raises(ValueError, match="request_deadline: must be a positive number of seconds"):
        Settings.from_env(home)

"""A client that hangs up before its body ends is no server error: an MLflow call (answered
directly by ``mlflow/errors.py`` or through FastAPI, ``messages.read_message`` either way) and
a point batch (``routes/points.py``, which reads its body itself) logged a ClientDisconnect
traceback as "unhandled error" and a 500 for it, before any token check, so anyone could fill
the server's log (19 lines a cut request). Through the real server: its access line says 400
(MLflow's shape) or 422 (the API's, as FastAPI answers a body it could not read) and no
traceback is written."""

from __future__ import annotations

import socket
import time

import pytest


def _access_lines(stderr: str, call: str) -> list[str]:
    return [line for line in stderr.splitlines() if f'"path":"{call}"' in line]


@pytest.mark.parametrize(
    ("method", "call", "status"),
    [
        ("POST", "/ajax-api/2.0/mlflow/runs/log-metric", 400),
        ("PATCH", "/api/2.0/mlflow/logged-models/m-1", 400),  # FastAPI's handler: a dependency
        ("POST", "/api/v1/projects/1/experiments/1/points", 422),
    ],
)
def test_a_body_cut_short_is_no_unhandled_error(shared_server, method, call, status) -> None:
    before = shared_server.stderr
    seen = len(_access_lines(before, call))
    with socket.create_connection(("127.0.0.1", shared_server.port)) as sock:
        sock.sendall(
            f"{method} {call} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"run_id": '.encode()
        )
    deadline = time.monotonic() + 30
    while len(_access_lines(shared_server.stderr, call)) == seen and time.monotonic() < deadline:
        time.sleep(0.05)
    after = shared_server.stderr
    lines = _access_lines(after, call)
    assert len(lines) > seen, "the server never finished the cut request"
    assert f'"status":{status}' in lines[-1], lines[-1]
    added = after[len(before) :]
    assert "ClientDisconnect" not in added and "unhandled error" not in added, added

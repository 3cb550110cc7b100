"""A client that hangs up before its body ends is no server error: an MLflow call answered
directly (``mlflow/errors.py``) logged a ClientDisconnect traceback as "unhandled error" and
a 500 for it, before any token check, so anyone could fill the server's log (19 lines a cut
request). Through the real server: its access line says 400 and no traceback is written."""

from __future__ import annotations

import socket
import time

CALL = "/ajax-api/2.0/mlflow/runs/log-metric"


def _access_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if f'"path":"{CALL}"' in line]


def test_a_body_cut_short_is_no_unhandled_error(shared_server) -> None:
    before = shared_server.stderr
    seen = len(_access_lines(before))
    with socket.create_connection(("127.0.0.1", shared_server.port)) as sock:
        sock.sendall(
            f"POST {CALL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"run_id": '.encode()
        )
    deadline = time.monotonic() + 30
    while len(_access_lines(shared_server.stderr)) == seen and time.monotonic() < deadline:
        time.sleep(0.05)
    after = shared_server.stderr
    lines = _access_lines(after)
    assert len(lines) > seen, "the server never finished the cut request"
    assert '"status":400' in lines[-1], lines[-1]
    added = after[len(before) :]
    assert "ClientDisconnect" not in added and "unhandled error" not in added, added

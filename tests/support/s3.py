"""A real S3-compatible server for tests: moto's standalone server (``moto[server]``).

Fixtures:
    s3_server: one ``moto_server`` process on 127.0.0.1 and a free port for the session, with a
        bucket; yields its endpoint URL. The AWS_* variables that point boto3 at it are set for
        for the session (restored after), so the servers tests start inherit them.
    s3_location: a fresh ``s3://bucket/<prefix>`` for one test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from support.servers import free_port

BUCKET = "mltrail-test"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server process for the session; its endpoint URL."""
    pytest.importorskip("moto")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **AWS_ENV},
    )
    saved = {name: os.environ.get(name) for name in (*AWS_ENV, "AWS_ENDPOINT_URL")}
    # session-wide, so servers started by session fixtures reach it too
    os.environ.update({**AWS_ENV, "AWS_ENDPOINT_URL": endpoint})
    try:
        _wait_until_up(proc, endpoint, log)
        httpx.put(f"{endpoint}/{BUCKET}", timeout=10).raise_for_status()
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_until_up(proc: subprocess.Popen, endpoint: str, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: {log.read_text(errors='replace')}")
        try:
            httpx.get(endpoint, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


@pytest.fixture
def s3_location(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://bucket/prefix``; the AWS variables name the test's S3 server."""
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:10]}"

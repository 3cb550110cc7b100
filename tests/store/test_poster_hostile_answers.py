"""The lean point poster (``store/http/poster.py``) reads a hostile server's answer as a
TransportError: a status line that is none, a Content-Length that is no number or one past any
answer to a point batch (its read allocated that many bytes at once: a MemoryError), a head
that never ends (gathered without bound). A raw loopback socket plays the server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from mltrail.core.errors import TransportError
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.http import HttpStore


@pytest.fixture
def hostile() -> Iterator[tuple[str, list[bytes]]]:
    """``(url, answers)``: each connection reads a request, gets ``answers[0]`` and is closed."""
    answers: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                conn.recv(1 << 20)
                with contextlib.suppress(OSError):  # the client may hang up first
                    conn.sendall(answers[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers
    finally:
        done.set()
        thread.join(5)
        listener.close()


def _batch() -> MetricBatch:
    it = np.arange(4, dtype=np.int64)
    chunk = SeriesChunk("loss", "train", it, np.full(4, -1, np.int64), it * 0.5, it * 1.0)
    return MetricBatch("hostile-poster", 1, (chunk,))


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n[]", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n[]", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n[]", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\n[]", "status line"),
        (b"garbage\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (1 << 20), "head over 64 KiB"),
    ],
)
def test_a_hostile_answer_to_a_point_batch_is_a_transport_error(hostile, answer, named) -> None:
    url, answers = hostile
    answers.append(answer)
    waits: list[float] = []
    with HttpStore(url, "t", sleep=waits.append, retries=1) as store:
        assert store._http._poster is not None  # the lean path, not httpx
        with pytest.raises(TransportError, match=named):
            store.append_points(1, 1, _batch())
    assert waits == [0.2]  # retried as any broken answer, then the error

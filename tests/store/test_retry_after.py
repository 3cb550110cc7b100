"""Retry-After values (RFC 9110): a number of seconds or an HTTP date, as
:func:`retry_after_seconds` turns them into a wait."""

from __future__ import annotations

import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mltrail.core.errors import NotFoundError, TransportError, error_from_dict
from mltrail.store.http import HttpStore
from mltrail.store.http.transport import retry_after_seconds

NOW = 1_780_000_000.0  # a unix time; the dates below are counted from it


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Thu, 28 May 2026 20:26:50 GMT", 10.0),  # NOW + 10 s
        ("Thu, 28 May 2026 20:26:30 GMT", 0.0),  # already past: no wait, never negative
        ("Thu, 28 May 2026 20:26:50", None),  # no zone: not an HTTP date
        ("Thu, 32 May 2026 20:26:50 GMT", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def test_a_429_of_no_known_kind_is_a_transport_error_that_may_wait() -> None:
    error = error_from_dict({"message": "slow down"}, 429, retry_after=2.0)
    assert isinstance(error, TransportError)
    assert error.outage and error.rate_limited and error.retry_after == 2.0


def test_a_transport_error_crosses_a_pickle_whole() -> None:
    """What an exception raised in a worker process arrives as (multiprocessing pickles it)."""
    sent = TransportError("away", "server", answered=429, retry_after=3.0)
    came = pickle.loads(pickle.dumps(sent))
    assert (came.message, came.field, came.answered, came.retry_after) == (
        "away",
        "server",
        429,
        3.0,
    )
    assert came.outage and came.rate_limited and str(came) == str(sent)


class _Hostile(BaseHTTPRequestHandler):
    """Every request: a 404 in the API's shape, with the server's Retry-After bytes."""

    def do_GET(self) -> None:
        body = b'{"error": {"type": "not_found", "field": null, "message": "no such project"}}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # send_header encodes latin-1: these are the value's bytes as given
        self.send_header("Retry-After", self.server.retry_after.decode("latin-1"))  # type: ignore[attr-defined]
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    "value",
    ["\u00b2".encode(), "\u00b2".encode("latin-1"), b"Thu, 28 May 99999999999 20:26:50 GMT"],
    ids=["superscript-utf8", "superscript-latin1", "year-past-9999"],
)
def test_a_hostile_retry_after_never_hides_the_servers_error(value: bytes) -> None:
    """``Retry-After: ²`` (a digit to str.isdigit, not to float) raised ValueError, and a date
    in the year 99999999999 OverflowError, from decode: the server's own 404 was lost (the
    CLI a traceback, the SDK retrying a refusal). Unusable values are no value."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.retry_after = value  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with (
            HttpStore(f"http://127.0.0.1:{server.server_port}", "t", retries=0) as store,
            pytest.raises(NotFoundError, match="no such project"),
        ):
            store.get_project(1)
    finally:
        server.shutdown()
        server.server_close()

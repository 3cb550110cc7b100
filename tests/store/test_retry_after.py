"""Retry-After values (RFC 9110): a number of seconds or an HTTP date, as
:func:`retry_after_seconds` turns them into a wait."""

from __future__ import annotations

import pickle

import pytest

from mltrail.core.errors import TransportError, error_from_dict
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

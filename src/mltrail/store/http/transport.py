"""How HttpStore talks to a server: build one request, send it under the retry policy, decode
the answer. Three small functions, so every Store method behaves alike on faults.

Requests that are safe to repeat (reads, idempotent batch appends, set-style writes) are retried
with backoff on connection faults and 429/502/503/504, a 429 or 503 after the wait its
``Retry-After`` asks when that fits in the policy's patience; others only when the request was
never sent (connection refused). Errors the server sends come back as the same :mod:`mltrail.core.errors`
classes SqlStore raises.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from mltrail.core.errors import (
    TOO_MANY_REQUESTS,
    AuthenticationError,
    MltrailError,
    TransportError,
    ValidationError,
    error_from_dict,
)
from mltrail.core.types import LogBatch, MetricBatch
from mltrail.core.wire import dump_json, parse_json
from mltrail.store.http.deadline import (
    DEFAULT_DEADLINE,
    Bound,
    Deadline,
    bind_client,
    bounded,
    outlasts,
)
from mltrail.store.http.poster import Poster, lean_target
from mltrail.store.http.skew import explain_skew, unknown_to_server

_decoded = threading.local()  # answers decoded on this thread: see answers_read
_T = TypeVar("_T")
RETRY_STATUSES = frozenset({TOO_MANY_REQUESTS, 502, 503, 504})
ASKS_WHEN_STATUSES = frozenset({TOO_MANY_REQUESTS, 503})
"""Answers whose ``Retry-After`` says when to ask again (RFC 9110 15.5.20, 15.6.4)."""
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 5
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is sent again.

    Attributes:
        retries: extra attempts for requests that may be repeated.
        backoff: first retry delay in seconds, doubled each attempt (capped at 5 s).
        sleep: injectable for tests.
    """

    retries: int = DEFAULT_RETRIES
    backoff: float = 0.2
    sleep: Callable[[float], None] = field(default=time.sleep)

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2**attempt, 5.0)

    @property
    def patience(self) -> float:
        """The seconds one request may spend waiting between its attempts: the backoff's."""
        return sum(self.delay(attempt) for attempt in range(self.retries))

    def pause(
        self,
        attempt: int,
        waited: float,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> float | None:
        """The seconds to wait before sending again after ``attempt`` (counted from 0),
        ``waited`` seconds having been waited already: the backoff, or what a 429/503's
        ``Retry-After`` asks (:func:`retry_after_seconds`) when it fits in what is left of the
        :attr:`patience`. None when it asks for longer: the answer stands (its error carries
        the wait, for a caller that can wait longer). A value that is no wait is no value:
        the backoff."""
        asked = retry_after_seconds(retry_after) if status in ASKS_WHEN_STATUSES else None
        if asked is None:
            return self.delay(attempt)
        return asked if waited + asked <= self.patience else None


def build_request(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Request:
    """One request; ``body`` is already in wire form (tagged floats), sent as JSON bytes."""
    sent = dict(headers or {})
    if body is not None:
        sent["Content-Type"] = "application/json"
    return client.build_request(
        method,
        path,
        content=None if body is None else dump_json(body),
        params=None if params is None else {k: v for k, v in params.items() if v is not None},
        headers=sent,
        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
    )


def send(
    client: httpx.Client,
    request: httpx.Request,
    policy: RetryPolicy,
    *,
    repeatable: bool,
    stream: bool = False,
    deadline: Bound | None = None,
) -> httpx.Response:
    """Send ``request``, retrying as its kind and the policy allow, every attempt and wait
    within ``deadline`` (a pause that would outlast it is not taken: the last answer stands, or
    the fault is raised).

    Args:
        stream: leave the body unread (the caller reads and closes the response); the
            deadline then ends with the answer's head.

    Raises:
        TransportError: the server stayed unreachable, or the deadline ran out (the message
            says which, naming the server).
    """
    waited = 0.0
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        pause = policy.delay(attempt)
        try:
            with bounded(deadline):
                response = client.send(request, stream=stream)
        except _NEVER_SENT as exc:
            if last or outlasts(deadline, pause):
                raise _unreachable(client, exc, deadline) from exc
        except httpx.TransportError as exc:
            if last or not repeatable or outlasts(deadline, pause):
                raise _unreachable(client, exc, deadline) from exc
        else:
            if not (repeatable and response.status_code in RETRY_STATUSES and not last):
                return response
            asked = policy.pause(
                attempt, waited, response.status_code, response.headers.get("retry-after")
            )
            if asked is None or outlasts(deadline, asked):  # longer than the patience left
                return response
            pause = asked
            response.close()
        policy.sleep(pause)
        waited += pause
    raise AssertionError("unreachable")  # pragma: no cover


def server_base(client: httpx.Client) -> str:
    """The server's URL as a user wrote it (without ``/api/v1``)."""
    return str(client.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")


def _unreachable(
    client: httpx.Client, exc: Exception, deadline: Bound | None = None
) -> TransportError:
    base = server_base(client)
    if deadline is not None and deadline.expired:
        return TransportError(f"the mltrail server at {base} was too slow: {deadline.explain()}")
    return TransportError(f"cannot reach the mltrail server at {base}: {exc}")


class _Answer(Protocol):
    """What :func:`decode` reads of an answer (an httpx response or a :class:`Poster`'s)."""

    @property
    def status_code(self) -> int: ...
    @property
    def is_success(self) -> bool: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` value asks a client to wait: a number of seconds, or an
    HTTP date (RFC 9110) counted from ``now`` (the unix time; the clock when None), never
    below 0. None for no value or one that is neither."""
    if value is None or not (text := value.strip()):
        return None
    if text.isascii() and text.isdigit():  # str.isdigit takes "²", which float does not
        return float(text)
    try:  # a year past 9999 is an OverflowError: a header never hides the answer's error
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # an HTTP date is GMT; a zone-less one is read as such
            return None
        return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def decode(response: _Answer, *, raw: bool = False) -> Any:
    """The answer's JSON (its bytes with ``raw``), or the error the server sent, raised."""
    if response.is_success:
        _decoded.count = getattr(_decoded, "count", 0) + 1
        if raw:
            return response.content
        if not response.content:
            return None
        try:  # orjson unless the body may hold integers beyond 64 bits (see wire.parse_json)
            return parse_json(response.content)
        except ValueError:  # a Wi-Fi or proxy sign-in page, or another program at the URL
            page = " ".join(response.text[:200].split())
            raise TransportError(
                f"the server answered HTTP {response.status_code} with something that is not "
                f"mltrail's JSON (a proxy's sign-in page, or not an mltrail server?): {page}",
                answered=response.status_code,
            ) from None
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    status = response.status_code
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    if isinstance(error, dict):
        raise error_from_dict(error, status, retry_after)
    page = " ".join(response.text[:200].split())  # a proxy's HTML page, as one line
    message = f"server answered HTTP {status}: {page}"
    if status >= 500 or status == TOO_MANY_REQUESTS:  # a client may wait and ask again
        raise TransportError(message, answered=status, retry_after=retry_after)
    raise MltrailError(message)


def bearer_token(token: str) -> str:
    """``token`` as an ``Authorization: Bearer`` value may carry it: printable ASCII with no
    space (what ``mltrail token create`` prints). A newline was 'cannot reach the server'
    (the SDK spooling behind a typo), a non-ASCII letter a UnicodeEncodeError, a control
    character the server's 400 about malformed headers.

    Raises:
        ValidationError: naming ``token``, without its value (it may be a real token with a
            stray character).
    """
    bad = next((c for c in token if not "!" <= c <= "~"), None)
    if bad is not None:
        raise ValidationError(
            f"must be printable ASCII without spaces (an API token as `mltrail token create` "
            f"prints it); it holds {bad!r} at position {token.index(bad)}",
            "token",
        )
    return token


def answers_read(method: Callable[..., _T]) -> Callable[..., _T]:
    """Wrap a Store method of HttpStore: a KeyError, TypeError, AttributeError, IndexError or
    ValueError raised after an answer was decoded in the call (an older or newer server's
    shape, another program's JSON at the URL) becomes one MltrailError saying so, not a
    traceback; raised before any answer (a caller's bad argument) it passes unchanged."""

    @functools.wraps(method)
    def reading(self: Any, *args: Any, **kwargs: Any) -> _T:
        before = getattr(_decoded, "count", 0)
        try:
            return method(self, *args, **kwargs)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            if isinstance(exc, MltrailError) or getattr(_decoded, "count", 0) == before:
                raise
            raise MltrailError(
                f"the server at {self.url} answered {method.__name__} in a shape this client "
                f"does not read ({type(exc).__name__}: {exc}): is it an mltrail server of a "
                "matching version?"
            ) from exc

    return reading


class Transport:
    """An httpx client on a server's ``/api/v1`` with the retry policy: what every
    ``Http<Noun>`` half of HttpStore calls through :meth:`call`.

    Args:
        url: the server's base URL (a trailing ``/api/v1`` is accepted).
        token: API token sent as ``Authorization: Bearer``.
        transport: an httpx transport (tests run the server app in-process); real HTTP when None.
        timeout: seconds one connect, read or write may block (long polls add their wait).
        policy: the retry policy.
        deadline: seconds one call may take, every attempt and wait included (a long poll's
            own timeout when longer); a stream's bytes must move at least
            :data:`~.deadline.FLOOR_BYTES` in every such window instead (:mod:`.deadline`).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None,
        timeout: float,
        policy: RetryPolicy,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        base = url.rstrip("/").removesuffix("/api/v1")
        headers = {"Accept": "application/json", "User-Agent": "mltrail-httpstore"}
        if token:
            headers["Authorization"] = f"Bearer {bearer_token(token)}"
        self.url = base
        self.policy = policy
        self.deadline = deadline
        self.client = bind_client(
            httpx.Client(
                base_url=base + "/api/v1", headers=headers, transport=transport, timeout=timeout
            )
        )
        lean = lean_target(base) if transport is None else None
        self._poster = None if lean is None else Poster(*lean, headers, timeout)
        self._poster_lock = threading.Lock()
        self._prefix = urlsplit(base).path + "/api/v1"
        self.lean = lean
        """``(host, port)`` of a plain-HTTP server reached directly, else None."""
        self.headers = headers

    @property
    def read_timeout(self) -> float:
        return self.client.timeout.read or DEFAULT_TIMEOUT

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        repeatable: bool = False,
        timeout: float | None = None,
        raw: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One Store call: build, send (retrying as ``repeatable`` allows), decode; an answer
        saying the server does not know the field or route asked gets both versions and
        what to do (``store/http/skew.py``)."""
        request = build_request(
            self.client, method, path, body=body, params=params, timeout=timeout, headers=headers
        )
        bound = self.bound(timeout)
        try:
            answer = send(self.client, request, self.policy, repeatable=repeatable, deadline=bound)
            return decode(answer, raw=raw)
        except AuthenticationError as exc:
            if "Authorization" in self.headers:
                raise
            raise self._no_token_sent(exc) from None
        except MltrailError as exc:
            if isinstance(exc, TransportError) or not unknown_to_server(exc, body, params):
                raise
            raise explain_skew(exc, self.server_version) from None

    def bound(self, timeout: float | None = None) -> Deadline:
        """The deadline of a call starting now: :attr:`deadline`, or a long poll's ``timeout``
        (its wait and a margin) when that is longer."""
        return Deadline(max(self.deadline, timeout or 0.0))

    def _no_token_sent(self, exc: AuthenticationError) -> AuthenticationError:
        """A 401 to a request that carried no token says how to give one: a token saved for
        another server is not sent to this one (``Settings.auth_token``)."""
        return AuthenticationError(
            f"{exc.message} (no token was sent to {self.url}: set MLTRAIL_TOKEN, or save one "
            f"for this server with `mltrail login {self.url}`)",
            exc.field,
        )

    def server_version(self) -> str | None:
        """The version the server says it runs (``GET /identity``, asked once, not retried);
        None when it does not say."""
        request = build_request(self.client, "GET", "/identity", timeout=10.0)
        once = RetryPolicy(retries=0)
        answer = decode(send(self.client, request, once, repeatable=False, deadline=self.bound()))
        found = answer.get("version") if isinstance(answer, dict) else None
        return found if isinstance(found, str) else None

    def post_bytes(self, path: str, content: bytes, content_type: str) -> Any:
        """A repeatable POST of a bytes body (point batches), decoded: through the lean
        :class:`~mltrail.store.http.poster.Poster` (two system calls, so two waits for the GIL)
        when the server is plain HTTP and no other thread is using it, else through httpx."""
        bound = self.bound()
        if self._poster is None or not self._poster_lock.acquire(blocking=False):
            request = self.client.build_request(
                "POST", path, content=content, headers={"Content-Type": content_type}
            )
            return decode(send(self.client, request, self.policy, repeatable=True, deadline=bound))
        try:
            waited = 0.0
            for attempt in range(self.policy.retries + 1):
                last = attempt == self.policy.retries
                pause = self.policy.delay(attempt)
                try:
                    answer = self._poster.post(self._prefix + path, content, content_type, bound)
                except TransportError:
                    if last or outlasts(bound, pause):
                        raise
                else:
                    if last or answer.status_code not in RETRY_STATUSES:
                        return decode(answer)
                    status, header = answer.status_code, answer.headers.get("retry-after")
                    asked = self.policy.pause(attempt, waited, status, header)
                    if asked is None or outlasts(bound, asked):  # past the patience left
                        return decode(answer)
                    pause = asked
                self.policy.sleep(pause)
                waited += pause
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._poster_lock.release()

    def close(self) -> None:
        self.client.close()
        if self._poster is None:
            return
        if not self._poster_lock.acquire(blocking=False):  # a request in flight: never wait
            self._poster.abort()
            return
        try:
            self._poster.close()
        finally:
            self._poster_lock.release()


class HttpNoun:
    """What every ``Http<Noun>`` half of HttpStore shares: the transport and path helpers."""

    _http: Transport

    def _get(self, path: str, **params: Any) -> Any:
        return self._http.call("GET", path, params=params, repeatable=True)

    @staticmethod
    def _experiment_path(project_id: int, experiment_id: int) -> str:
        return f"/projects/{int(project_id)}/experiments/{int(experiment_id)}"

    @staticmethod
    def _require_client_id(batch: MetricBatch | LogBatch) -> None:
        """Refuse, before sending, a batch without a ``client_id``: stored without a receipt is
        for the embedded store only (the MLflow surface's requests); the REST surface numbers
        every batch, and a retried request must land once.

        Raises:
            ValidationError: naming ``client_id``.
        """
        if batch.client_id is None:
            raise ValidationError(
                "a batch without a client_id (stored without a receipt) is embedded-only; "
                "HttpStore sends only batches with a client_id and seq",
                "client_id",
            )

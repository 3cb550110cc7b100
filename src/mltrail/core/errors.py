"""The mltrail error tree.

Every user error carries the name of the field at fault, so the server can answer with a 4xx
JSON body, the API can raise it as is, and the CLI can print it as one line.
"""

from __future__ import annotations


class MltrailError(Exception):
    """Base class of every error mltrail raises on purpose.

    Attributes:
        field: the input field at fault, when one is ("metrics", "project", ...).
        status_code: the HTTP status the server answers with.
    """

    status_code = 400
    kind = "error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def to_dict(self) -> dict[str, str | None]:
        """The JSON body the server sends for this error."""
        return {"type": self.kind, "field": self.field, "message": self.message}

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its class, its ``args`` and its attributes, rebuilt without calling
        ``__init__`` (pickle's default, ``cls(*args)``, could not rebuild a QueryError and
        dropped what ``args`` does not hold): an error raised in a worker process reaches
        the parent whole (``field``, ``answered``, ``retry_after``...)."""
        return (_rebuilt_error, (type(self), self.args), self.__dict__)


def _rebuilt_error(cls: type[MltrailError], args: tuple[object, ...]) -> MltrailError:
    """An error of ``cls`` with ``args``, its attributes left for pickle to restore."""
    error = cls.__new__(cls)
    error.args = args
    return error


class ValidationError(MltrailError, ValueError):
    """Input that is malformed, of the wrong type or out of range."""

    status_code = 422
    kind = "validation_error"


class NotFoundError(MltrailError, LookupError):
    """A project, experiment, weights hash or other object that does not exist."""

    status_code = 404
    kind = "not_found"


class AuthenticationError(MltrailError, PermissionError):
    """Missing, unknown or revoked API token."""

    status_code = 401
    kind = "authentication_error"


class PermissionDeniedError(MltrailError, PermissionError):
    """The token is valid but its user may not touch that project."""

    status_code = 403
    kind = "permission_denied"


class ConflictError(MltrailError):
    """The request conflicts with the current state (a stop for a finished experiment ...)."""

    status_code = 409
    kind = "conflict"


class PayloadTooLargeError(MltrailError):
    """A request body over the server's limit."""

    status_code = 413
    kind = "payload_too_large"


OUTAGE_STATUSES = frozenset({502, 503, 504})
"""Answers saying the server is away for now (a gateway before it, or the server itself while
its database restarts), not that the request failed: a client may wait and ask again."""
TOO_MANY_REQUESTS = 429
"""A rate limit (a proxy's, or a hosted server's) asking the client to come back later, often
saying when in ``Retry-After``: a client may wait and ask again too."""


class TransportError(MltrailError, ConnectionError):
    """The server could not be reached, answered with a server error, or asked to be asked
    later (429).

    Attributes:
        answered: the HTTP status the server (or a proxy before it) answered with; None when
            no answer came (refused, reset, timed out).
        retry_after: the seconds the answer's ``Retry-After`` asked the client to wait (a
            date already turned into seconds from now); None when it said nothing usable.
    """

    status_code = 503
    kind = "transport_error"

    def __init__(
        self,
        message: str,
        field: str | None = None,
        *,
        answered: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, field)
        self.answered = answered
        self.retry_after = retry_after

    @property
    def outage(self) -> bool:
        """Whether the server is away for now (unreachable, a 502/503/504: restarting behind a
        proxy, its database busy; or a 429: rate-limited) rather than failing on the request
        (a 500)."""
        return self.answered is None or self.answered in OUTAGE_STATUSES or self.rate_limited

    @property
    def rate_limited(self) -> bool:
        """Whether the answer was a 429 Too Many Requests."""
        return self.answered == TOO_MANY_REQUESTS


class ExperimentStopped(MltrailError):
    """Raised inside training code when someone asked the experiment to stop."""

    status_code = 409
    kind = "experiment_stopped"


ERRORS_BY_KIND: dict[str, type[MltrailError]] = {
    cls.kind: cls
    for cls in (
        MltrailError,
        ValidationError,
        NotFoundError,
        AuthenticationError,
        PermissionDeniedError,
        ConflictError,
        PayloadTooLargeError,
        TransportError,
        ExperimentStopped,
    )
}


def error_from_dict(
    body: dict[str, object], status_code: int, retry_after: float | None = None
) -> MltrailError:
    """Rebuild the error a server sent, so HttpStore raises what SqlStore would have (a 429 or
    5xx of no known kind is a TransportError, ``retry_after`` the seconds its answer asked
    the client to wait)."""
    kind = str(body.get("type", ""))
    cls = ERRORS_BY_KIND.get(kind)
    if cls is None:
        worth_waiting = status_code >= 500 or status_code == TOO_MANY_REQUESTS
        cls = TransportError if worth_waiting else MltrailError
    field = body.get("field")
    message = str(body.get("message", f"HTTP {status_code}"))
    if issubclass(cls, TransportError):
        return cls(
            message, str(field) if field else None, answered=status_code, retry_after=retry_after
        )
    return cls(message, str(field) if field else None)

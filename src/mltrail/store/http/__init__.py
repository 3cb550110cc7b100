"""HttpStore: the Store over a mltrail server's REST API, one ``<noun>.py`` per noun."""

from mltrail.store.http.store import HttpStore
from mltrail.store.http.transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT, RETRY_STATUSES

__all__ = ["DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "RETRY_STATUSES", "HttpStore"]

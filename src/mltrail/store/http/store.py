"""HttpStore: the Store over a mltrail server's REST API (httpx).

It only carries calls: behaviour lives in the server's SqlStore, so embedded and server mode
match; one Store method is one REST call. Composed of one ``Http<Noun>`` half per noun
(``store/http/<noun>.py``) over one :class:`~mltrail.store.http.transport.Transport`. Light on
purpose: httpx and orjson, no FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable

import httpx

from mltrail.store.base import Store
from mltrail.store.http.agents import HttpAgents
from mltrail.store.http.artifacts import HttpArtifacts
from mltrail.store.http.charts import HttpCharts
from mltrail.store.http.deadline import DEFAULT_DEADLINE
from mltrail.store.http.experiments import HttpExperiments
from mltrail.store.http.external import HttpExternal
from mltrail.store.http.identity import HttpIdentity
from mltrail.store.http.jobs import HttpJobs
from mltrail.store.http.logs import HttpLogs
from mltrail.store.http.points import HttpPoints
from mltrail.store.http.projects import HttpProjects
from mltrail.store.http.transport import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    HttpNoun,
    RetryPolicy,
    Transport,
    answers_read,
)
from mltrail.store.http.users import HttpUsers
from mltrail.store.http.weights import HttpWeights


class HttpStore(
    HttpProjects,
    HttpExperiments,
    HttpPoints,
    HttpExternal,
    HttpCharts,
    HttpWeights,
    HttpLogs,
    HttpJobs,
    HttpAgents,
    HttpUsers,
    HttpArtifacts,
    HttpIdentity,
    Store,
):
    """A Store that talks to ``mltrail server``.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:5870``.
        token: API token sent as ``Authorization: Bearer``.
        transport: an httpx transport (tests pass one that runs the server app in-process);
            default: real HTTP.
        timeout: seconds one connect, read or write may block (long-poll reads add their wait).
        retries: extra attempts for requests that may be repeated.
        backoff: first retry delay in seconds, doubled each attempt (capped at 5 s).
        sleep: injectable for tests.
        deadline: seconds one call may take, every attempt included; an artifact's bytes
            must instead move 64 KiB in every such window (``store/http/deadline.py``).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        policy = RetryPolicy(retries=retries, backoff=backoff, sleep=sleep)
        self._http = Transport(
            url, token, transport=transport, timeout=timeout, policy=policy, deadline=deadline
        )
        self.url = self._http.url

    def close(self) -> None:
        self._http.close()


def _read_answers_carefully(store: type[HttpStore]) -> None:
    """Every public method of the ``Http<Noun>`` halves wrapped by :func:`answers_read`."""
    for noun in store.__mro__:
        if not (issubclass(noun, HttpNoun) and noun.__module__.startswith("mltrail.store.http")):
            continue
        for name, member in list(vars(noun).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(noun, name, answers_read(member))


_read_answers_carefully(HttpStore)

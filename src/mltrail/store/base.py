"""The one Store type, composed of one interface per noun (``store/<noun>.py``).

SqlStore implements it over a database (``store/sql/<noun>.py``), HttpStore over a server's
REST API (``store/http/<noun>.py``). Every public operation is one method: SqlStore does it in
one transaction, HttpStore in one REST call, so embedded and server mode match by construction.

Every method that takes a project checks that the store's user may touch it (SqlStore scoped
with ``as_user``; the embedded store is single-user and sees all). Errors are the ones of
:mod:`mltrail.core.errors`, raised identically by both implementations.
"""

from __future__ import annotations

from mltrail.store.agents import AgentStore
from mltrail.store.artifacts import ArtifactStore
from mltrail.store.charts import ChartStore
from mltrail.store.experiments import LIST_PAGE_SIZE, ExperimentStore
from mltrail.store.external import ExternalStore
from mltrail.store.identity import IdentityStore
from mltrail.store.jobs import JobStore
from mltrail.store.logs import LogStore
from mltrail.store.points import PointStore
from mltrail.store.projects import ProjectStore
from mltrail.store.users import UserStore
from mltrail.store.weights import WeightStore

__all__ = ["LIST_PAGE_SIZE", "Store"]


class Store(
    ProjectStore,
    ExperimentStore,
    PointStore,
    ExternalStore,
    ChartStore,
    WeightStore,
    LogStore,
    JobStore,
    AgentStore,
    UserStore,
    ArtifactStore,
    IdentityStore,
):
    """Everything mltrail stores, behind intent-named methods, one interface per noun."""

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

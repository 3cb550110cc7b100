"""The contract: ``as_api()`` with its ``projects``, ``experiments`` and ``models`` namespaces,
plus ``artifacts`` (an experiment's files), and ``jobs`` and ``agents`` for remote execution.

Behaviour lives in the Store, once: each namespace (``api/<noun>.py``) adapts the contract's
parameter forms (JSON strings or Python objects, positional order, defaults), makes one Store
call and renders. ``from mltrail.api import Api`` is the public import path.
"""

from __future__ import annotations

from mltrail.api.agents import AgentsApi
from mltrail.api.artifacts import ArtifactsApi, artifact_dict
from mltrail.api.experiments import ExperimentsApi, experiment_dict
from mltrail.api.jobs import JobsApi
from mltrail.api.logs import format_log_line
from mltrail.api.models import ModelsApi, link_dict
from mltrail.api.projects import ProjectsApi, project_dict
from mltrail.api.render import iso_time
from mltrail.config import Settings
from mltrail.core.html import html_card
from mltrail.store import open_store
from mltrail.store.base import Store

__all__ = [
    "AgentsApi",
    "Api",
    "ArtifactsApi",
    "ExperimentsApi",
    "JobsApi",
    "ModelsApi",
    "ProjectsApi",
    "artifact_dict",
    "experiment_dict",
    "format_log_line",
    "iso_time",
    "link_dict",
    "project_dict",
]


class Api:
    """What ``mltrail.as_api()`` returns.

    Args:
        store: where everything is read and written; the Api closes it on :meth:`close`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.projects = ProjectsApi(store)
        self.experiments = ExperimentsApi(store)
        self.models = ModelsApi(store)
        self.jobs = JobsApi(store)
        self.agents = AgentsApi(store)
        self.artifacts = ArtifactsApi(store)

    @classmethod
    def from_settings(cls, settings: Settings) -> Api:
        """The Api on the store ``settings`` select (server or embedded)."""
        return cls(open_store(settings))

    def close(self) -> None:
        self.store.close()

    def _repr_html_(self) -> str:
        """A card for Jupyter: the store and the namespaces to call."""
        names = ("projects", "experiments", "models", "jobs", "agents", "artifacts")
        fields = {"store": type(self.store).__name__, "namespaces": ", ".join(names)}
        return html_card("mltrail API", fields)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

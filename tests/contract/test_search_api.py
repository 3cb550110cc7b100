"""``as_api().experiments.search / rename / set_notes / add_tags / delete / archive / restore /
purge`` in every mode (see conftest.MODES)."""

from __future__ import annotations

import uuid

import pytest

from mltrail import ConflictError, NotFoundError, ValidationError
from mltrail.api import Api
from mltrail.api.experiments import ExperimentsApi
from mltrail.core.types import Status


@pytest.fixture
def project(api: Api) -> str:
    """A project of its own, addressed by name (the API takes ids or names)."""
    name = f"search-{uuid.uuid4().hex[:8]}"
    pid = api.projects.create(name)["project_id"]
    for i in range(7):
        api.store.create_experiment(pid, hyperparameters={"lr": 10.0**-i, "i": i})
    return name


def test_search_filters_sorts_and_pages(api: Api, project: str) -> None:
    api.experiments.rename(project, 3, "the best")
    found = api.experiments.search(project, "params.lr < 0.05", ["params.i desc"])
    assert [r["experiment_id"] for r in found] == [7, 6, 5, 4, 3]
    page = api.experiments.search(project, "params.lr < 0.05", "params.i desc", limit=2, offset=1)
    assert [r["experiment_id"] for r in page] == [6, 5]
    assert api.experiments.search(project, "name = 'the best'")[0]["experiment_id"] == 3
    small_pages = ExperimentsApi(api.store, page_size=2)  # limit None pages to the end
    assert len(small_pages.search(project, "params.i >= 1")) == 6
    with pytest.raises(ValidationError, match="position 10"):
        api.experiments.search(project, "params.i >")
    with pytest.raises(ValidationError, match="include"):
        api.experiments.search(project, include="gone")


def test_lifecycle_through_the_api(api: Api, project: str) -> None:
    notes = "# Result\n\n| lr | acc |\n|---|---|\n| 0.1 | 0.9 |"
    assert api.experiments.set_notes(project, 1, notes)["notes"] == notes
    assert api.experiments.add_tags(project, 1, ["a", "b"])["tags"] == ["a", "b"]
    assert api.experiments.remove_tags(project, 1, ["a"])["tags"] == ["b"]
    assert api.experiments.set_description(project, 1, "first")["description"] == "first"
    assert api.experiments.delete(project, 2)["state"] == "deleted"
    assert api.experiments.archive(project, 3)["state"] == "archived"
    assert [r["experiment_id"] for r in api.experiments.list(api.projects.resolve(project))] == [
        1,
        4,
        5,
        6,
        7,
    ]
    assert [r["experiment_id"] for r in api.experiments.search(project, include="deleted")] == [2]
    assert api.experiments.restore(project, 2)["state"] == "active"
    pid = api.projects.resolve(project)
    with pytest.raises(ConflictError):  # still running
        api.experiments.purge(project, 2)
    api.store.update_experiment(pid, 2, status=Status.DONE)
    assert api.experiments.purge(project, 2) == {
        "project": pid,
        "experiment": 2,
        "blobs_removed": 0,
    }
    with pytest.raises(NotFoundError):
        api.experiments.get(pid, 2)
    assert api.store.create_experiment(pid).experiment_id == 8

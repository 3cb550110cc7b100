"""``resolve_project``: a project named by a run is found, or created once."""

from __future__ import annotations

import pytest

from mltrail.api.projects import resolve_project
from mltrail.store.sql import SqlStore


def test_two_runs_naming_a_new_project_at_once_end_with_one(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other process creates the project between this one's find and its create: this
    one's create is refused (unique name) and it takes the other's project."""
    mine, other = SqlStore.open(migrated_db_url), SqlStore.open(migrated_db_url)
    try:
        theirs: list[int] = []
        find = mine.find_project

        def find_and_lose_the_race(name: str):
            found = find(name)
            if not theirs:
                theirs.append(resolve_project(other, name))  # in between: the other start
            return found

        monkeypatch.setattr(mine, "find_project", find_and_lose_the_race)
        project = resolve_project(mine, "race")
        assert theirs and project == theirs[0]
        named = [p.id for p in other.list_projects("all") if p.display_name == "race"]
        assert named == [project]
    finally:
        mine.close()
        other.close()


def test_a_project_name_given_where_an_id_is_needed_says_where_names_work() -> None:
    # `api.experiments.list("mnist")` said only "project: must be an integer, got str"
    from mltrail.api.projects import project_id
    from mltrail.core.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        project_id("mnist")
    assert info.value.field == "project"
    assert str(info.value) == (
        "project: must be a project id (an integer), got the name 'mnist'; "
        "experiments.search and the CLI's -p also take a name"
    )
    assert project_id("3") == 3


def test_a_name_lookup_asks_for_the_namesakes_not_every_project(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each lookup listed all the user's projects (an administrator's: all of them), so a
    # script resolving names in a loop paid for the whole list every time
    from mltrail.core.errors import ValidationError

    store = SqlStore.open(migrated_db_url)
    try:
        ids = [store.create_project(name).id for name in ("one", "twin", "twin", "other")]
        store.delete_project(ids[0])

        def listed(include: str = "active") -> list:
            raise AssertionError("a name lookup listed every project")

        monkeypatch.setattr(store, "list_projects", listed)
        assert resolve_project(store, "one", create=False) == ids[0]  # only deleted: taken
        with pytest.raises(ValidationError, match=rf"\(ids {ids[1]}, {ids[2]}\): give the id"):
            resolve_project(store, "twin", create=False)
        store.delete_project(ids[1])
        assert resolve_project(store, "twin", create=False) == ids[2]
    finally:
        store.close()

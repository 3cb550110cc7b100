"""``project_named``: an import's project is found, or created once, when two imports of a new
project name start at once."""

from __future__ import annotations

import pytest

from mltrail.api.imports import ImportReport, project_named
from mltrail.core.types import Project
from mltrail.store.sql import SqlStore


def test_two_imports_naming_a_new_project_at_once_end_with_one(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other import creates the project between this one's find and its create: this
    one's create is refused (unique name), it takes the other's project and counts it reused."""
    mine, other = SqlStore.open(migrated_db_url), SqlStore.open(migrated_db_url)
    try:
        theirs: list[Project] = []
        find = mine.find_project

        def find_and_lose_the_race(name: str) -> Project | None:
            found = find(name)
            if not theirs:  # in between: the other import
                theirs.append(project_named(other, name, "", ImportReport()))
            return found

        monkeypatch.setattr(mine, "find_project", find_and_lose_the_race)
        report = ImportReport()
        project = project_named(mine, "imported", "", report)
        assert theirs and project.id == theirs[0].id
        assert (report.projects_created, report.projects_reused) == (0, 1)
        named = [p.id for p in other.list_projects("all") if p.display_name == "imported"]
        assert named == [project.id]
    finally:
        mine.close()
        other.close()

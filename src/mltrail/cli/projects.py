"""``mltrail projects``: list and create projects."""

from __future__ import annotations

from typing import Any

import click

from mltrail.cli.common import echo_json, echo_table, output_format_option, with_api


@click.group()
def projects() -> None:
    """List and create projects."""


@projects.command("list")
@output_format_option
@with_api
def list_projects(api: Any, output_format: str) -> None:
    """Projects you are a member of."""
    rows = api.projects.list()
    if output_format == "json":
        echo_json(rows)
        return
    columns = ("project_id", "display_name", "description", "experiment_count", "last_activity")
    echo_table(columns, ([p[c] for c in columns] for p in rows))


@projects.command("create")
@click.argument("display_name")
@click.option("--description", "-d", default="", help="Up to 140 characters.")
@output_format_option
@with_api
def create_project(api: Any, display_name: str, description: str, output_format: str) -> None:
    """Create a project named DISPLAY_NAME."""
    project = api.projects.create(display_name, description)
    if output_format == "json":
        echo_json(project)
    else:
        click.echo(f"created project {project['project_id']}: {project['display_name']}")


@projects.command("add-member")
@click.option("--project", "-p", required=True, type=int, help="Project id.")
@click.option("--user", "user_name", required=True, help="User name to add.")
@with_api
def add_member(api: Any, project: int, user_name: str) -> None:
    """Let another user see and change a project."""
    api.projects.add_member(project, user_name)
    click.echo(f"{user_name} is now a member of project {project}")

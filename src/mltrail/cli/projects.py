"""``mltrail projects``: list, create, rename, delete and restore projects; members."""

from __future__ import annotations

from typing import Any

import click

from mltrail.cli.common import (
    DELETED_PROJECT,
    PROJECT,
    echo_json,
    echo_table,
    output_format_option,
    with_api,
)


@click.group()
def projects() -> None:
    """List, create, rename, delete and restore projects; invite members."""


@projects.command("list")
@click.option(
    "--include",
    type=click.Choice(["active", "deleted", "all"]),
    default="active",
    show_default=True,
    help="Which projects: deleted ones are hidden by default.",
)
@output_format_option
@with_api
def list_projects(api: Any, include: str, output_format: str) -> None:
    """Projects you are a member of."""
    rows = api.projects.list(include)
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


@projects.command("rename")
@click.option("--project", "-p", required=True, type=PROJECT, help="Project id or name.")
@click.argument("display_name")
@with_api
def rename_project(api: Any, project: int, display_name: str) -> None:
    """Rename a project to DISPLAY_NAME (any member may)."""
    found = api.projects.update(project, display_name=display_name)
    click.echo(f"renamed project {project}: {found['display_name']}")


@projects.command("delete")
@click.option("--project", "-p", required=True, type=PROJECT, help="Project id or name.")
@with_api
def delete_project(api: Any, project: int) -> None:
    """Delete a project: hidden from lists and closed to new runs until restored; its
    experiments are kept (any member may)."""
    api.projects.delete(project)
    click.echo(f"deleted project {project} (`mltrail projects restore -p {project}` undoes it)")


@projects.command("restore")
@click.option(
    "--project",
    "-p",
    required=True,
    type=DELETED_PROJECT,
    help="Project id, or the name of a deleted project.",
)
@with_api
def restore_project(api: Any, project: int) -> None:
    """Restore a deleted project."""
    found = api.projects.restore(project)
    click.echo(f"restored project {project}: {found['display_name']}")


@projects.command("add-member")
@click.option("--project", "-p", required=True, type=PROJECT, help="Project id or name.")
@click.option("--user", "user_name", required=True, help="User name to add.")
@with_api
def add_member(api: Any, project: int, user_name: str) -> None:
    """Invite another user to a project (an administrator adds them at once)."""
    if api.projects.add_member(project, user_name) == "added":
        click.echo(f"{user_name} is now a member of project {project}")
    else:
        click.echo(
            f"invited {user_name} to project {project}: they become a member when they run "
            f"`mltrail projects accept -p {project}` (if that user exists)"
        )


@projects.command("invitations")
@output_format_option
@with_api
def list_invitations(api: Any, output_format: str) -> None:
    """Projects that invited you."""
    rows = api.projects.invitations()
    if output_format == "json":
        echo_json(rows)
        return
    columns = ("project_id", "display_name", "invited_by", "created_at")
    echo_table(columns, ([i[c] for c in columns] for i in rows))


@projects.command("accept")
@click.option("--project", "-p", required=True, type=int, help="Project id.")
@with_api
def accept_invitation(api: Any, project: int) -> None:
    """Accept a project's invitation: become a member."""
    found = api.projects.accept(project)
    click.echo(f"you are now a member of project {project}: {found['display_name']}")


@projects.command("decline")
@click.option("--project", "-p", required=True, type=int, help="Project id.")
@with_api
def decline_invitation(api: Any, project: int) -> None:
    """Decline a project's invitation."""
    api.projects.decline(project)
    click.echo(f"declined the invitation to project {project}")

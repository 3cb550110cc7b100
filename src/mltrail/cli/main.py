"""The ``mltrail`` command. Sub-commands load lazily so ``mltrail --help`` stays quick."""

from __future__ import annotations

import importlib
import sys

import click

from mltrail.cli.common import run_cli

# command name -> "module:attribute"; each module owns one resource's commands
COMMANDS = {
    "agent": "mltrail.cli.jobs:agent",
    "agents": "mltrail.cli.jobs:agents",
    "db": "mltrail.cli.db:db",
    "demo": "mltrail.cli.demo:demo",
    "experiments": "mltrail.cli.experiments:experiments",
    "jobs": "mltrail.cli.jobs:jobs",
    "models": "mltrail.cli.models:models",
    "projects": "mltrail.cli.projects:projects",
    "run": "mltrail.cli.jobs:run",
    "server": "mltrail.cli.server:server",
    "sync": "mltrail.cli.sync:sync",
    "token": "mltrail.cli.server:token",
    "ui": "mltrail.cli.server:ui",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mltrail")
def cli() -> None:
    """mltrail: experiment tracking for machine learning.

    Embedded mode (a SQLite file under $MLTRAIL_HOME, default ~/.mltrail) unless MLTRAIL_URL
    and MLTRAIL_TOKEN select a server.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(cli, argv))

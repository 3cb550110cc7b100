"""The ``mltrail`` command. Sub-commands load lazily so ``mltrail --help`` stays quick."""

from __future__ import annotations

import importlib
import sys

import click

from mltrail.cli.common import cli_context, run_cli

# command name -> ("module:attribute", one-line help); each module owns one resource's commands
COMMANDS = {
    "agent": ("mltrail.cli.jobs:agent", "Run queued jobs on this machine."),
    "agents": ("mltrail.cli.jobs:agents", "List agents and their heartbeats."),
    "artifacts": ("mltrail.cli.artifacts:artifacts", "List, download and upload files of runs."),
    "db": ("mltrail.cli.db:db", "Upgrade or back up the database."),
    "demo": ("mltrail.cli.demo:demo", "Record demo experiments and open the UI."),
    "experiments": (
        "mltrail.cli.experiments:experiments",
        "List, follow, stop and enrich experiments.",
    ),
    "gc": ("mltrail.cli.artifacts:gc", "Delete artifact bytes nothing references."),
    "import": ("mltrail.cli.imports:import_group", "Copy runs from MLflow or TensorBoard."),
    "jobs": ("mltrail.cli.jobs:jobs", "List remote jobs."),
    "login": ("mltrail.cli.login:login", "Save a server URL and token in the config file."),
    "missinglink": (
        "mltrail.cli.missinglink:missinglink",
        "Set up the original MissingLink client.",
    ),
    "models": ("mltrail.cli.models:models", "Weights hashes and stored checkpoints."),
    "projects": ("mltrail.cli.projects:projects", "List and create projects."),
    "run": ("mltrail.cli.jobs:run", "Queue a command as a remote experiment."),
    "server": ("mltrail.cli.server:server", "Start the tracking server."),
    "sync": ("mltrail.cli.sync:sync", "Upload batches spooled while the server was away."),
    "token": ("mltrail.cli.server:token", "Create API tokens."),
    "ui": ("mltrail.cli.server:ui", "Serve the web UI on the embedded store."),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from the table above, without importing them."""
        with formatter.section("Commands"):
            formatter.write_dl(
                [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
            )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mltrail")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """mltrail: experiment tracking for machine learning.

    Embedded mode (a SQLite file under $MLTRAIL_HOME, default ~/.mltrail) unless MLTRAIL_URL
    and MLTRAIL_TOKEN select a server.
    """
    cli_context(ctx)  # Settings are read here, once; commands receive them through ctx.obj


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(cli, argv))

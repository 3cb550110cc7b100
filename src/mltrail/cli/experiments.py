"""``mltrail experiments``: the contract's methods from the shell. Parse, call, render."""

from __future__ import annotations

import sys
from typing import Any

import click

from mltrail.cli.common import PROJECT, echo_json, echo_table, output_format_option, with_api
from mltrail.cli.history import export
from mltrail.core.lifecycle import INCLUDE_CHOICES
from mltrail.core.types import is_system_metric

project_option = click.option("--project", "-p", type=PROJECT, help="Project id or name.")
experiment_option = click.option("--experiment", "-e", type=int, help="Experiment id.")
weights_hash_option = click.option(
    "--weights-hash", help="Hexadecimal sha1 of the model's weights."
)


@click.group()
def experiments() -> None:
    """List, follow, stop and enrich experiments."""


@experiments.command("list")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option(
    "--filter",
    "filter_text",
    help='e.g. "metrics.validation/loss < 0.5 and params.lr >= 1e-3" (see docs/rest.md).',
)
@click.option(
    "--sort",
    "sort",
    multiple=True,
    help='Repeatable: "metrics.validation/loss asc", "created desc".',
)
@click.option(
    "--include",
    type=click.Choice(INCLUDE_CHOICES),
    default="active",
    show_default=True,
    help="Which experiments: the active list, the archive, the trash, or all.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--offset", type=click.IntRange(min=0), help="Skip this many matches first.")
@output_format_option
@with_api
def list_experiments(
    api: Any,
    project: int,
    filter_text: str | None,
    sort: tuple[str, ...],
    include: str,
    limit: int | None,
    offset: int | None,
    output_format: str,
) -> None:
    """A project's experiments with hyperparameters and last metric values, filtered and
    sorted in the database."""
    rows = api.experiments.search(
        project, filter_text, list(sort), limit=limit, offset=offset, include=include
    )
    if output_format == "json":
        echo_json(rows)
        return
    # system metrics (CPU, memory ...) would double the columns: `get` and exports show them
    metric_names = sorted({k for r in rows for k in r["metrics"] if not is_system_metric(k)})
    ex_names = sorted({k for r in rows for k in r["ex_metrics"]})
    # a crashed run's last heartbeat says when its process died: shown when a row has crashed
    heartbeat = any(r["status"] == "crashed" for r in rows)
    columns = ["id", "name", "status", "tags", "created_at", "hyperparameters"]
    if heartbeat:
        columns.insert(3, "last_heartbeat")
    if include != "active":
        columns.insert(3, "state")
    echo_table(
        [*columns, *metric_names, *ex_names],
        (
            [
                r["experiment_id"],
                r["display_name"],
                r["status"],
                *([r["state"]] if include != "active" else []),
                *([r["last_heartbeat"]] if heartbeat else []),
                ", ".join(r["tags"]),
                r["created_at"],
                r["hyperparameters"],
                *(r["metrics"].get(m) for m in metric_names),
                *(r["ex_metrics"].get(m) for m in ex_names),
            ]
            for r in rows
        ),
    )


@experiments.command("get")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@output_format_option
@with_api
def get_experiment(api: Any, project: int, experiment: int, output_format: str) -> None:
    """One experiment in detail: parameters, environment, summaries, weights hashes."""
    exp = api.experiments.get(project, experiment)
    if output_format == "json":
        echo_json(exp)
        return
    fields = (
        "experiment_id",
        "display_name",
        "status",
        "last_heartbeat",
        "created_at",
        "duration",
        "hyperparameters",
        "ex_metrics",
    )
    echo_table(("field", "value"), ((f, exp[f]) for f in fields), title=f"project {project}")
    echo_table(
        ("metric", "count", "last", "min", "max", "last_iteration"),
        (
            (s["name"], s["count"], s["last"], s["min"], s["max"], s["last_iteration"])
            for s in exp["summaries"]
        ),
    )


@experiments.command("logs")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@experiment_option
@click.option("--disable-colors", is_flag=True, help="Print without ANSI colours.")
@click.option("--no-follow", is_flag=True, help="Print what is there and exit.")
@with_api
def logs(
    api: Any, project: int, experiment: int | None, disable_colors: bool, no_follow: bool
) -> None:
    """Print an experiment's log lines, following them while it runs (latest when -e is omitted).

    A follower rides out a server restart: it says "server unreachable, retrying..." once on
    stderr and resumes after the last line it printed; it gives up after 5 minutes of one outage.
    A rate limit (HTTP 429) is waited out alike, each wait what its Retry-After asks (at most
    60 s).
    """
    colours = not disable_colors and sys.stdout.isatty()
    api.experiments.logs(
        project,
        experiment,
        disable_colors=not colours,
        follow=not no_follow,
        collect=False,
        catch_interrupt=False,  # Ctrl-C: exit 130 (run_cli), as a shell expects
    )


@experiments.command("update-metrics")
@click.option("--metrics", required=True, help="JSON object, e.g. '{\"ex_cost\": 99}'.")
@project_option
@experiment_option
@weights_hash_option
@output_format_option
@with_api
def update_metrics(
    api: Any,
    metrics: str,
    project: int | None,
    experiment: int | None,
    weights_hash: str | None,
    output_format: str,
) -> None:
    """Add ex_ metrics to an experiment (by -p/-e, or to every experiment holding --weights-hash)."""
    updated = api.experiments.update_metrics(
        metrics, project=project, experiment=experiment, weights_hash=weights_hash
    )
    _echo_updated(updated, output_format, "metrics")


@experiments.command("update-chart")
@click.option("--chart-name", required=True, help="Chart name (same name replaces the chart).")
@project_option
@experiment_option
@weights_hash_option
@click.option("--chart-x-name", default="X", show_default=True)
@click.option(
    "--chart-y-name",
    default="Y",
    show_default=True,
    help="A name, or a JSON list with one name per line.",
)
@click.option("--chart-scope", default="test", show_default=True, help="test, validation or train.")
@click.option("--chart-type", default="line", show_default=True)
@click.option("--chart-x", required=True, help="JSON list of x values.")
@click.option(
    "--chart-y", required=True, help="JSON list: one value per x, or one row of n values per x."
)
@output_format_option
@with_api
def update_chart(api: Any, output_format: str, **options: Any) -> None:
    """Create or replace a custom chart on an experiment."""
    updated = api.experiments.update_chart(**options)
    _echo_updated(updated, output_format, f"chart {options['chart_name']!r}")


@experiments.command("update-metrics-per-iteration")
@click.option("--weights-hash", required=True, help="Hexadecimal sha1 of the model's weights.")
@click.option("--metrics", required=True, help="JSON object, e.g. '{\"ex_accuracy\": 0.9}'.")
@output_format_option
@with_api
def update_metrics_per_iteration(
    api: Any, weights_hash: str, metrics: str, output_format: str
) -> None:
    """Attach ex_ metrics to every experiment iteration/epoch that produced the hash."""
    touched = api.experiments.update_metrics_per_iteration(weights_hash, metrics)
    if output_format == "json":
        echo_json({"touched": touched})
    else:
        click.echo(f"updated {touched} experiment iteration(s)")


@experiments.command("stop")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@with_api
def stop(api: Any, project: int, experiment: int) -> None:
    """Ask a queued or running experiment to stop."""
    exp = api.experiments.stop(project, experiment)
    click.echo(
        f"stop requested for project {project} experiment {experiment} (status {exp['status']})"
    )


@experiments.command("series")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@click.option("--key", required=True, help="Metric key.")
@click.option("--phase", default="train", show_default=True)
@click.option("--max-points", type=int, help="Downsample to at most this many points.")
@output_format_option
@with_api
def series(
    api: Any,
    project: int,
    experiment: int,
    key: str,
    phase: str,
    max_points: int | None,
    output_format: str,
) -> None:
    """Print a metric series (iteration, epoch, value)."""
    data = api.experiments.series(project, experiment, key, phase, max_points)
    if output_format == "json":
        echo_json(data)
        return
    echo_table(
        ("iteration", "epoch", "value"),
        zip(data["iterations"], data["epochs"], data["values"], strict=True),
    )


@experiments.command("rename")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@click.argument("name")
@with_api
def rename(api: Any, project: int, experiment: int, name: str) -> None:
    """Change an experiment's display name."""
    exp = api.experiments.rename(project, experiment, name)
    click.echo(f"experiment {experiment} is now {exp['display_name']!r}")


@experiments.command("describe")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@click.argument("description")
@with_api
def describe(api: Any, project: int, experiment: int, description: str) -> None:
    """Replace an experiment's description."""
    api.experiments.set_description(project, experiment, description)
    click.echo(f"described experiment {experiment}")


@experiments.command("notes")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@click.option(
    "--file", "notes_file", type=click.File("r"), help="Read the notes from a file ('-': stdin)."
)
@click.argument("notes", required=False)
@with_api
def notes(api: Any, project: int, experiment: int, notes_file: Any, notes: str | None) -> None:
    """Replace an experiment's notes (markdown), or print them when none are given."""
    if notes_file is not None:
        notes = notes_file.read()
    if notes is None:
        click.echo(api.experiments.get(project, experiment)["notes"])
        return
    api.experiments.set_notes(project, experiment, notes)
    click.echo(f"notes of experiment {experiment} saved ({len(notes)} characters)")


@experiments.command("tag")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@click.option("--remove", is_flag=True, help="Remove the tags instead of adding them.")
@click.argument("tags", nargs=-1, required=True)
@with_api
def tag(api: Any, project: int, experiment: int, remove: bool, tags: tuple[str, ...]) -> None:
    """Add tags to an experiment (or --remove them)."""
    change = api.experiments.remove_tags if remove else api.experiments.add_tags
    exp = change(project, experiment, list(tags))
    click.echo(f"experiment {experiment} tags: {', '.join(exp['tags']) or '(none)'}")


def _lifecycle_command(action: str, done: str, doc: str) -> None:
    @experiments.command(action, help=doc)
    @click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
    @click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
    @with_api
    def command(api: Any, project: int, experiment: int) -> None:
        getattr(api.experiments, action)(project, experiment)
        click.echo(f"experiment {experiment} {done}")


_lifecycle_command(
    "delete",
    "moved to the trash (mltrail experiments restore brings it back)",
    "Move an experiment to the trash (restorable for MLTRAIL_TRASH_DAYS days, 30 by default).",
)
_lifecycle_command("archive", "archived", "Hide an experiment from lists (--include archived).")
_lifecycle_command("restore", "restored", "Bring an archived or deleted experiment back.")


@experiments.command("purge")
@click.option("--project", "-p", type=PROJECT, required=True, help="Project id or name.")
@click.option("--experiment", "-e", type=int, required=True, help="Experiment id.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_api
def purge(api: Any, project: int, experiment: int, yes: bool) -> None:
    """Remove an experiment and everything it owns for good (points, logs, charts, links,
    artifacts no other experiment uses). Its number is never given again."""
    if not yes:
        click.confirm(f"Purge experiment {experiment} of project {project} for good?", abort=True)
    answer = api.experiments.purge(project, experiment)
    click.echo(f"experiment {experiment} purged ({answer['blobs_removed']} artifact blob(s) freed)")


def _echo_updated(updated: list[dict[str, int]], output_format: str, what: str) -> None:
    if output_format == "json":
        echo_json(updated)
        return
    targets = ", ".join(f"project {u['project']} experiment {u['experiment']}" for u in updated)
    click.echo(f"updated {what} on {targets}")


experiments.add_command(export)

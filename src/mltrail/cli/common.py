"""What every command shares: building the API, turning errors into one line, rendering."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
import orjson

from mltrail.core.errors import MltrailError

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("table", "json")


def run_cli(group: click.Group, argv: list[str] | None) -> int:
    """Run the group; mltrail errors become one line on stderr and exit code 1."""
    try:
        group.main(args=argv, prog_name="mltrail", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MltrailError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 2 if exc.status_code in (401, 403) else 1
    except KeyboardInterrupt:
        return 130
    return 0


def get_api(ctx: click.Context | None = None) -> Any:
    """The Api for this invocation, built once from the environment."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if "api" not in root.obj:
        from mltrail.api import Api
        from mltrail.config import Settings

        root.obj["api"] = Api.from_settings(Settings.from_env())
        root.call_on_close(root.obj["api"].close)
    return root.obj["api"]


def with_api(func: F) -> F:
    """Decorator: call the command with the Api as first argument."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(func, get_api(ctx), *args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def output_format_option(func: F) -> F:
    return click.option(
        "--output-format",
        "-o",
        type=click.Choice(OUTPUT_FORMATS),
        default="table",
        show_default=True,
        help="Render as a table or as JSON.",
    )(func)


def echo_json(value: Any) -> None:
    click.echo(
        orjson.dumps(
            value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=_json_default
        ).decode()
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, float):
        return str(value)
    raise TypeError(type(value).__name__)


def echo_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """Render rows with rich, to stdout, wide enough not to wrap in pipes."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold"
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(format_cell(v) for v in row))
    # piped output: never wrap, so scripts and logs get one row per line
    if sys.stdout.isatty():
        Console(highlight=False, markup=False).print(table)
        return
    # piped output: never wrap, one row per line, no trailing padding
    console = Console(width=10_000, highlight=False, markup=False, color_system=None)
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)

"""What every command shares: building the API, turning errors into one line, rendering."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from mltrail.config import Settings
from mltrail.core.errors import MltrailError
from mltrail.core.wire import to_wire

if TYPE_CHECKING:
    from mltrail.api import Api

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("table", "json")


def run_cli(group: click.Group, argv: list[str] | None) -> int:
    """Run the group; mltrail errors become one line on stderr and exit code 1."""
    try:
        # without standalone mode Click returns, not raises, the code of a command's
        # `raise click.exceptions.Exit(n)` (`run --attach` of a run that did not end `done`)
        exit_code = group.main(args=argv, prog_name="mltrail", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.UsageError as exc:  # a typo'd flag or command, a missing or bad option:
        # the one line naming it, without Click's usage and help hint before it
        click.echo(f"Error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MltrailError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 2 if exc.status_code in (401, 403) else 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file it cannot write or read (-o, -d, a full disk); Click
        # handles a closed pipe (`| head`) itself
        click.echo(f"Error: {_os_error_line(exc)}", err=True)
        return 1
    # no command returns a value, so an int here is an Exit's code
    return exit_code if isinstance(exit_code, int) else 0


def _os_error_line(exc: OSError) -> str:
    """``PATH: reason`` for a file error, else the error's own text."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


class CliContext:
    """What the root group builds once per invocation: the Settings, and the Api on first use.

    Args:
        settings: read from the environment by the root group.
        close_later: registers the Api's close with the root context.
    """

    def __init__(self, settings: Settings, close_later: Callable[[Callable[[], Any]], Any]):
        self.settings = settings
        self._close_later = close_later
        self._api: Api | None = None

    @property
    def api(self) -> Api:
        if self._api is None:
            from mltrail.api import Api

            self._api = Api.from_settings(self.settings)
            self._close_later(self._api.close)
        return self._api


def cli_context(ctx: click.Context | None = None) -> CliContext:
    """The invocation's :class:`CliContext`, made by the root group from ``Settings.from_env``
    (also when a sub-command runs on its own, as in tests)."""
    root = (ctx or click.get_current_context()).find_root()
    if not isinstance(root.obj, CliContext):
        try:
            settings = Settings.from_env()
        except ValueError as exc:  # a bad MLTRAIL_* variable: one line, not a traceback
            raise click.ClickException(str(exc)) from None
        root.obj = CliContext(settings, root.call_on_close)
    return root.obj


def get_settings(ctx: click.Context | None = None) -> Settings:
    """The invocation's Settings, read once by the root group."""
    return cli_context(ctx).settings


def get_api(ctx: click.Context | None = None) -> Api:
    """The invocation's Api, built once from its Settings."""
    return cli_context(ctx).api


def with_api(func: F) -> F:
    """Decorator: call the command with the Api as first argument."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(func, get_api(ctx), *args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


class ProjectParam(click.ParamType):
    """``-p``: a project id, or a display name looked up through the invocation's Api
    (among deleted projects only with ``deleted=True``: what ``projects restore`` acts on)."""

    name = "project"

    def __init__(self, *, deleted: bool = False) -> None:
        self.deleted = deleted

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        from mltrail.core.errors import MltrailError

        try:
            projects = get_api(ctx).projects
            return projects.resolve_deleted(text) if self.deleted else projects.resolve(text)
        except MltrailError as exc:  # one line, as for every other user error
            raise click.ClickException(str(exc)) from None


PROJECT = ProjectParam()
DELETED_PROJECT = ProjectParam(deleted=True)


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
    """Print ``value`` as JSON exactly as REST sends it: non-finite floats tagged
    (``{"$float": "NaN"}``), integers beyond 64 bits whole (the standard library's encoder
    where orjson refuses them)."""
    tagged = to_wire(value)
    try:
        text = orjson.dumps(
            tagged, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=_json_default
        ).decode()
    except TypeError:  # an integer beyond 64 bits
        text = json.dumps(tagged, indent=2, default=_json_default)
    click.echo(text)


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


# a table cell shows at most this much of one hyperparameter (or other value): a 2 MB value
# made `experiments list` print 13,000 lines; `-o json` shows every value whole
MAX_VALUE_CHARS = 200


# C0 and C1 control characters but tab and newline: what a terminal acts on instead of showing
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def format_cell(value: Any) -> str:
    """One table cell; control characters shown as ``\\x1b``, so a value another user logged
    (a hyperparameter, a captured command line) cannot drive the reader's terminal (``ESC ]
    52`` writes the clipboard on some terminals, ``ESC ] 0`` the window title)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{_visible(str(k))}={_shorten(str(v))}" for k, v in value.items())
    return _shorten(str(value))


def _visible(text: str) -> str:
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def _shorten(text: str) -> str:
    text = _visible(text)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[: MAX_VALUE_CHARS - 1]}… ({len(text):,} characters; -o json shows all)"


@contextlib.contextmanager
def progress_bar(unit: str, minimum: int = 0) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar of ``unit`` on stderr, on a terminal
    only and once the total reaches ``minimum`` (a short task ends before a bar would help)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task: list[Any] = []

    def progress(done: int, total: int) -> None:
        if total < minimum or not console.is_terminal:
            return
        if not task:
            bar.start()
            task.append(bar.add_task(unit, total=total))
        bar.update(task[0], completed=done)

    try:
        yield progress
    finally:
        if task:
            bar.stop()

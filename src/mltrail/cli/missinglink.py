"""``mltrail missinglink``: set up the original MissingLink client to talk to this server."""

from __future__ import annotations

import configparser
import io
import os
import tempfile
from pathlib import Path

import click

from mltrail.config import Settings

DEFAULT_CONFIG = Path("~/.MissingLinkAI/missinglink.cfg")  # where the client looks by default


@click.group()
def missinglink() -> None:
    """Use the original MissingLink client (``ml``, ``as_api()``) with an mltrail server."""


@missinglink.command("config")
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=str(DEFAULT_CONFIG),
    show_default=True,
    help="Where to write the client's config file (pass it as --config-file or as_api(config_file=)).",
)
def write_config(output: Path) -> None:
    """Write a MissingLink client config for $MLTRAIL_URL with $MLTRAIL_TOKEN.

    The token becomes the client's refresh_token; the client exchanges it for short-lived
    id_tokens itself (and writes them into the file, which it must be able to write).
    """
    settings = Settings.from_env()
    if settings.url is None:
        raise click.ClickException(
            "MLTRAIL_URL is not set: the MissingLink client talks to a server"
        )
    token = settings.auth_token
    if token is None:
        raise click.ClickException(
            f"no token for {settings.url} (set MLTRAIL_TOKEN, or `mltrail login "
            f"{settings.url}`): it becomes the client's refresh_token"
        )
    from mltrail.store.http.transport import bearer_token

    path = output.expanduser()
    # the client sends it as a bearer token too; a newline would also add lines to the file
    _write_private(path, config_text(settings.url, bearer_token(token)))
    click.echo(f"wrote {path}")


def config_text(url: str, token: str) -> str:
    """The INI file the client reads: its API host and the token it refreshes id_tokens with."""
    parser = configparser.RawConfigParser()
    base = url.rstrip("/")
    parser["general"] = {"api_host": base, "host": base}
    parser["token"] = {"refresh_token": token, "id_token": ""}
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()


def _write_private(path: Path, text: str) -> None:
    """Write readable by the owner only (it holds a token), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

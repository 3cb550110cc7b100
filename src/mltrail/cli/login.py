"""``mltrail login URL``: check a token against a server and keep both in the config file."""

from __future__ import annotations

import click

from mltrail.cli.common import get_settings
from mltrail.config import write_config_file
from mltrail.core.errors import MltrailError


@click.command("login")
@click.argument("url")
@click.option(
    "--token",
    prompt=True,
    hide_input=True,
    help="API token (asked for, unechoed, when not given).",
)
def login(url: str, token: str) -> None:
    """Check TOKEN against the server at URL, then store both in $MLTRAIL_HOME/config.toml
    (readable by you only), so later commands and runs use that server without
    MLTRAIL_URL / MLTRAIL_TOKEN (which still win when set)."""
    from mltrail.api import Api

    settings = get_settings()
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="URL")
    api = Api.from_settings(settings.with_(url=url, token=token.strip()))
    try:
        api.store.list_projects()  # an authenticated request: refused for a bad token
    except MltrailError as exc:
        raise click.ClickException(f"login to {url} failed: {exc}") from None
    finally:
        api.close()
    write_config_file(settings.config_file, {"url": url, "token": token.strip()})
    click.echo(f"logged in to {url}; token saved in {settings.config_file}")

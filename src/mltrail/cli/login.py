"""``mltrail login URL``: check a token against a server and save it in the config file as that
server's token (sent to no other)."""

from __future__ import annotations

import click

from mltrail.cli.common import get_settings
from mltrail.config import save_token, server_key, url_problem
from mltrail.core.errors import MltrailError


def _server_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """URL, checked before the token is asked for (a typo is not worth typing a token)."""
    url = value.strip().rstrip("/")
    problem = url_problem(url)
    if problem is None and server_key(url) is None:
        problem = "must not hold user@ (a token is saved for a host, not a user)"
    if problem:
        raise click.BadParameter(problem)
    return url


@click.command("login")
@click.argument("url", callback=_server_url)
@click.option(
    "--token",
    prompt=True,
    hide_input=True,
    help="API token (asked for, unechoed, when not given).",
)
def login(url: str, token: str) -> None:
    """Check TOKEN against the server at URL, then save it in $MLTRAIL_HOME/config.toml
    (readable by you only) as that server's token, and URL as the server to use, so later
    commands and runs use it without MLTRAIL_URL / MLTRAIL_TOKEN (which still win when set).
    A saved token is sent only to the server it was saved for: MLTRAIL_URL naming another
    server gets no token unless MLTRAIL_TOKEN gives one. Tokens saved for other servers are
    kept (log in to each)."""
    from mltrail.api import Api

    settings = get_settings()
    if not token.strip():
        raise click.BadParameter("must not be empty", param_hint="--token")
    api = Api.from_settings(settings.with_(url=url, token=token.strip()))
    try:
        api.store.list_projects()  # an authenticated request: refused for a bad token
    except MltrailError as exc:
        raise click.ClickException(f"login to {url} failed: {exc}") from None
    finally:
        api.close()
    save_token(settings.config_file, url, token.strip())
    click.echo(f"logged in to {url}; token saved in {settings.config_file}")

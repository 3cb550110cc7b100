"""``mltrail sync``: upload what the SDK spooled while the store was unreachable."""

from __future__ import annotations

import warnings

import click

from mltrail.cli.common import cli_context, get_api, get_settings
from mltrail.config import url_problem


def _server_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (problem := url_problem(value.strip())):
        raise click.BadParameter(problem)
    return None if value is None else value.strip()


@click.command()
@click.option(
    "--to",
    "to_url",
    metavar="URL",
    callback=_server_url,
    help="Upload every spooled batch to the server at URL (with MLTRAIL_TOKEN, else the "
    "token `mltrail login` saved for URL), whichever server or database it was spooled for.",
)
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="First move the batches set aside in spool/rejected/ back into the spool (once what "
    "the store refused them for is fixed, e.g. a deleted project restored); a batch refused "
    "again is set aside again.",
)
def sync(to_url: str | None, retry_rejected: bool) -> None:
    """Upload spooled batches ($MLTRAIL_HOME/spool) to the configured store.

    A batch belongs to the store it was spooled for, known by the identity the store reports
    (so another URL of the same server, or a new port, still matches); a run started offline
    gets its experiment created here, once. Replays are idempotent: a batch already stored is
    not stored twice. Files the store refuses (4xx) or that cannot be read are set aside in
    spool/rejected/ with the reason. Exits non-zero only when batches remain because the store
    is still unreachable.
    """
    from mltrail.sdk.spool import Spool, SpoolWarning
    from mltrail.sdk.sync import sync as sync_spool

    if to_url is not None:
        context = cli_context()
        context.settings = context.settings.with_(url=to_url)
    settings = get_settings()
    spool = Spool.from_settings(settings)
    if retry_rejected:
        click.echo(f"moved {spool.requeue_rejected()} rejected batches back into the spool")
    waiting = len(spool.files())
    if not waiting:
        click.echo(f"nothing to sync: {spool.directory} is empty")
        return
    with warnings.catch_warnings():  # each problem is echoed below, once
        warnings.simplefilter("ignore", SpoolWarning)
        result = sync_spool(get_api().store, settings, retarget=to_url is not None)
    click.echo(
        f"uploaded {result.sent} of {waiting} spooled batches "
        f"({result.points} points, {result.lines} log lines stored), "
        f"created {len(result.created)} experiments, rejected {result.rejected}"
    )
    for created in result.created:
        click.echo(f"  created {created}")
    if result.other_target:
        click.echo(
            f"{result.other_target} batches belong to another server or database: left "
            "(`mltrail sync --to URL` sends them to the server at URL)"
        )
    for message in result.errors:
        click.echo(f"  {message}", err=True)
    if result.rejected:
        click.echo(f"rejected batches are kept in {spool.directory / 'rejected'}", err=True)
    if result.remaining:
        raise click.ClickException(
            f"{result.remaining} batches remain in {spool.directory} "
            "(the store is unreachable); run `mltrail sync` again"
        )

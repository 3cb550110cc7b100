"""``mltrail server``, ``mltrail token create`` and ``mltrail ui``."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mltrail.cli.common import get_settings
from mltrail.config import DEFAULT_HOST, DEFAULT_PORT, Settings

PORT = click.IntRange(0, 65535)  # 0: a free port; beyond 65535 bind() raised OverflowError

if TYPE_CHECKING:
    from mltrail.server.balance import BalancedListener
    from mltrail.store.sql import SqlStore

DB_HELP = "Database URL: sqlite:///PATH or postgresql+psycopg://... [default: embedded SQLite]"


ARTIFACTS_HELP = (
    "Where artifact bytes go: a folder or s3://bucket/prefix (endpoint and credentials from the "
    "AWS_* variables) [default: $MLTRAIL_ARTIFACTS, else $MLTRAIL_HOME/artifacts]"
)


def _open_sql_store(
    settings: Settings,
    db_url: str | None,
    artifacts: str | None = None,
    presign: bool = False,
    fsync: bool = False,
) -> SqlStore:
    """The server side always stores in a database, whatever MLTRAIL_URL says."""
    from mltrail.store import artifact_limits
    from mltrail.store.blobs import open_blobs
    from mltrail.store.sql import SqlStore

    blobs = open_blobs(artifacts or settings.artifacts_location, presign=presign, fsync=fsync)
    blobs.check_reachable()
    return SqlStore.open(
        db_url or settings.db_url,
        blobs=blobs,
        limits=artifact_limits(settings),
        crash_after=settings.crash_after,
        trash_days=settings.trash_days,
    )


def _migrate_apart(url: str) -> None:
    """Bring the database to the newest schema in a forked child (POSIX), so the server that
    then opens it finds it migrated and never imports Alembic: 11 MB that would stay resident
    for nothing. Whatever the child's outcome, the open that follows migrates (or reports
    why it cannot) in-process as before."""
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from mltrail.store.sql import SqlStore

            SqlStore.open(url).close()
            code = 0
        except BaseException:
            pass  # the parent's own open reports it
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _freeze_long_lived_heap() -> None:
    """Move everything built so far (modules, the app, its routes, the engine) out of the
    cyclic collector's reach: an answer of 1,000 runs builds tens of thousands of containers,
    and each collection they trigger would otherwise walk that whole heap again (a third of
    ``search_runs``' time)."""
    gc.collect()
    gc.freeze()


def _prepare_serving() -> None:
    """What a serving process does before it answers: its long-lived heap frozen, one malloc
    arena for all its threads, and the C heap's free pages handed back (``server/memory.py``):
    what opening the store and building the app freed (0.3 MiB) stays resident otherwise."""
    from mltrail.server.memory import release_free_memory, use_one_malloc_arena

    _freeze_long_lived_heap()
    use_one_malloc_arena()
    release_free_memory()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says the server listens (a port in use is
    one line naming it, not uvicorn's log line after "listening on"; ``--port 0`` then prints
    the port the system chose)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # '::' serves IPv4 clients too, as uvicorn's own bind did (create_server's default
        # would make it IPv6-only)
        dualstack = family == socket.AF_INET6 and socket.has_dualstack_ipv6()
        return socket.create_server(
            (host, port), family=family, backlog=2048, dualstack_ipv6=dualstack
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise click.ClickException(
            f"port: cannot listen on {host}:{port}: {reason} (is another server running "
            "there? choose another --port)"
        ) from None


def _serve(app: Any, sock: socket.socket) -> None:
    _prepare_serving()
    _uvicorn_server(app).run(sockets=[sock])


def _uvicorn_server(app: Any, listener: BalancedListener | None = None) -> Any:
    """uvicorn's Server for ``app``, which on SIGINT/SIGTERM also ends the long polls and log
    streams in progress (``server.polling.STOPPING``) so they answer before the graceful
    shutdown's bound, instead of being cancelled into a 500. With a ``listener`` (a worker of
    ``--workers``), the listener accepts the connections, not asyncio's server: each worker
    takes its share (``server/balance.py``)."""
    import uvicorn

    from mltrail.server.http_protocol import uvicorn_options
    from mltrail.server.polling import STOPPING

    class StoppingServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            if listener is not None:
                state = self.server_state
                state.connections = listener.track(state.connections)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            if listener is None:
                await super().startup(sockets)
                return
            await super().startup(sockets=[])  # no asyncio server: the listener accepts
            config, state = self.config, self.server_state
            listener.start(lambda: config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state))  # fmt: skip

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if listener is not None:
                listener.stop()
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            STOPPING.set()
            super().handle_exit(sig, frame)

    # bounded graceful shutdown: open log streams must not hold the process forever
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=5,
        **uvicorn_options(),  # httptools, head deadline and size limit (server/http_protocol.py)
    )
    return StoppingServer(config)


def _serve_workers(build_app: Callable[[], Any], sock: socket.socket, workers: int) -> int:
    """Serve from ``workers`` processes sharing one listening socket, a worker accepting a
    connection only while no other holds fewer open (``server/balance.py``). Each forks
    before opening its own store (no connection crosses a fork); they share nothing but the
    database, which every request goes to, and the counts of open connections, so any worker
    can answer any request. The parent forwards SIGINT/SIGTERM and returns when all have
    ended (their worst exit status)."""
    import signal
    import traceback

    from mltrail.server.balance import BalancedListener, ConnectionCounts

    counts = ConnectionCounts(workers)
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: its own app and store, then serve until told to stop
            code = 0
            try:
                app = build_app()
                _prepare_serving()
                listener = BalancedListener(sock, counts, index)
                _uvicorn_server(app, listener).run(sockets=[sock])
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)  # never return into the parent's click command
        children.append(pid)
    sock.close()

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    statuses: list[int] = []
    while len(statuses) < len(children):
        pid, status = os.wait()
        if pid in children:
            counts.leave(children.index(pid))  # the others stop leaving connections to it
            statuses.append(os.waitstatus_to_exitcode(status))
    # uvicorn re-raises the signal it stopped on after its graceful shutdown: not a failure
    stopped = {-signal.SIGTERM, -signal.SIGINT}
    return max(0 if code in stopped else abs(code) for code in statuses)


@click.command()
@click.option("--db", "db_url", default=None, help=DB_HELP)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=PORT, help="TCP port.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="Another Host header name to answer to (repeatable; '*' for any). "
    "Default: localhost, 127.0.0.1, ::1 and --host.",
)
@click.option("--artifacts", "artifacts", default=None, help=ARTIFACTS_HELP)
@click.option(
    "--artifacts-presign",
    is_flag=True,
    help="Answer S3 artifact downloads with presigned URLs, so large files bypass the server.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port, each new connection to the one holding the fewest "
    "(stateless over the database; POSIX only).",
)
@click.option(
    "--artifacts-fsync",
    is_flag=True,
    help="Flush each artifact in a local folder to disk before acknowledging it (survives a "
    "power loss; uploads then wait for the disk).",
)
def server(
    db_url: str | None,
    host: str,
    port: int,
    allowed_hosts: tuple[str, ...],
    artifacts: str | None,
    artifacts_presign: bool,
    artifacts_fsync: bool,
    workers: int,
) -> None:
    """Run the mltrail server: REST API under /api/v1, a token on every request.

    On the first start on an empty database it creates user "admin" and prints its token once.
    """
    from mltrail.server import create_app
    from mltrail.server.security import allowed_host_list

    settings = get_settings()
    hosts = allowed_host_list(host, allowed_hosts)
    options = (settings, db_url, artifacts, artifacts_presign, artifacts_fsync)
    _migrate_apart(db_url or settings.db_url)
    store = _open_sql_store(*options)  # migrates the database, once, before any worker
    try:
        admin_token = store.auth.ensure_admin()
        if admin_token:
            click.echo(f"admin token: {admin_token}")
            click.echo("(shown once; `mltrail token create --user NAME` makes more)")
            sys.stdout.flush()
        sock = _listen(host, port)
        port = sock.getsockname()[1]
        click.echo(f"mltrail server listening on http://{host}:{port}", err=True)
        if workers == 1:
            _serve(create_app(settings, store, allowed_hosts=hosts, access_log=True), sock)
            return
    finally:
        store.close()
    sys.stdout.flush()
    sys.stderr.flush()

    def build_app() -> Any:
        return create_app(settings, _open_sql_store(*options), allowed_hosts=hosts, access_log=True)

    code = _serve_workers(build_app, sock, workers)
    if code:
        raise SystemExit(code)


@click.group()
def token() -> None:
    """API tokens for the server."""


@token.command("create")
@click.option("--db", "db_url", default=None, help=DB_HELP)
@click.option("--user", "user_name", required=True, help="User name (created when new).")
@click.option("--admin", is_flag=True, help="Make a new user an administrator.")
@click.option("--label", default="", help="A note stored with the token.")
def create_token(db_url: str | None, user_name: str, admin: bool, label: str) -> None:
    """Create a token for USER (and the user when new); prints the token."""
    from mltrail.core.errors import NotFoundError

    store = _open_sql_store(get_settings(), db_url)
    try:
        new = ""
        try:
            store.auth.get_user(user_name)
        except NotFoundError:
            store.auth.create_user(user_name, is_admin=admin)
            new = "new "
        click.echo(store.auth.create_token(user_name, label=label))
        # which database: a token made without the server's --db works only in the embedded one
        click.echo(f"token for {new}user {user_name!r} in {store.url}", err=True)
    finally:
        store.close()


def run_ui(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_message: bool = True,
) -> None:
    """Serve the embedded store and the web UI without authentication; blocks until Ctrl-C.

    Args:
        settings: where the embedded database lives (``settings.home``).
        host: interface; keep 127.0.0.1, there is no authentication.
        port: TCP port.
        open_message: print the URL to open.
    """
    from mltrail.server import create_app

    store = _open_sql_store(settings, None)
    try:
        sock = _listen(host, port)
        if open_message:
            click.echo(f"mltrail UI at http://{host}:{sock.getsockname()[1]}/  (Ctrl-C to stop)")
            sys.stdout.flush()
        _serve(create_app(settings, store, require_auth=False), sock)
    finally:
        store.close()


@click.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=PORT, help="TCP port.")
def ui(port: int) -> None:
    """Open the web UI on the embedded database (no token; 127.0.0.1 only)."""
    run_ui(get_settings(), port=port)

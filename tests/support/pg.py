"""Databases of the tests on the machine's shared PostgreSQL cluster.

Every test database is created by :func:`create_database`, which turns ``synchronous_commit``
off for it: a commit then returns before its WAL reaches the disk (~10 ms per commit on these
machines, hundreds of thousands of commits a run). Nothing is lost that a test could see: no
test can crash or stop the shared cluster (a test that restarts PostgreSQL uses a private
cluster of its own, ``support.pg_cluster``, which keeps PostgreSQL's default), and a crash of
an mltrail process loses nothing PostgreSQL has acknowledged either way.
"""

from __future__ import annotations

from typing import Any

CONNECT_TIMEOUT = 30  # seconds; a loaded machine (load 15-20) has timed out at 3


def create_database(conn: Any, name: str, template: str | None = None) -> None:
    """``CREATE DATABASE name [TEMPLATE template]`` with ``synchronous_commit`` off (a
    template's copy does not inherit its per-database settings), on an autocommit psycopg
    connection to the shared cluster."""
    clause = f' TEMPLATE "{template}"' if template else ""
    conn.execute(f'CREATE DATABASE "{name}"{clause}')
    conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')

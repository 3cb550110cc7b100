"""What a database takes on disk, measured the same way for every side."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def used_sqlite_bytes(path: Path) -> int:
    """Bytes a SQLite database uses: checkpoint the WAL, then (pages - free pages) x page size.

    Counting used pages (not the file size) keeps free pages left by deletes, and a WAL not yet
    checkpointed, out of the figure; tables and indexes are all counted.
    """
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)
    finally:
        conn.close()

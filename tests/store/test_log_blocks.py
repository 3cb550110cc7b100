"""Migration 0016: log lines kept in blocks of consecutive lines; the migration goes down to a
row per line and up again keeping every line, its seq, time, stream, level and exact text."""

from __future__ import annotations

from sqlalchemy import text

from mltrail.core.types import LogBatch, LogLine
from mltrail.core.validation import MAX_LOG_MESSAGE_LEN
from mltrail.store.sql import SqlStore
from mltrail.store.sql.log_blocks import BLOCK_CHARS, BLOCK_LINES, SHORT_BLOCK
from support.stores import migrate

_ODD = ["plain", "nul \x00 inside", "back \\ slash", "byte \udcff", "é ünïcode"]


def _lines(start: int, count: int) -> tuple[LogLine, ...]:
    return tuple(
        LogLine(1_764_331_200.0 + i / 7, "stderr" if i % 3 else "stdout",
                "WARNING" if i % 5 else "INFO", f"{_ODD[i % len(_ODD)]} {i}")
        for i in range(start, start + count)
    )  # fmt: skip


def _every_line(store: SqlStore, pid: int, number: int) -> list[LogLine]:
    lines: list[LogLine] = []
    while page := store.read_logs(pid, number, after_seq=len(lines), limit=1000):
        lines += page
    return lines


def _block_sizes(store: SqlStore) -> list[int]:
    with store._db.read() as conn:
        query = text("SELECT count FROM log_blocks ORDER BY experiment_id, first_seq")
        return list(conn.execute(query).scalars())


def test_a_batch_is_stored_in_blocks_and_read_from_any_line(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        p = store.create_project("blocks")
        store.create_experiment(p.id)
        sizes = (3, BLOCK_LINES + 5, 1)
        start = 0
        for seq, size in enumerate(sizes):
            store.append_logs(p.id, 1, LogBatch("c", seq, _lines(start, size)))
            start += size
        assert _block_sizes(store) == [BLOCK_LINES, 8, 1]  # the second batch took the first's
        want = [LogLine(x.time, x.stream, x.level, x.message, i + 1)
                for i, x in enumerate(_lines(0, start))]  # fmt: skip
        assert _every_line(store, p.id, 1) == want
        for after in (0, 2, 3, BLOCK_LINES + 2, BLOCK_LINES + 3, start - 1, start):
            page = store.read_log_page(p.id, 1, after_seq=after, limit=BLOCK_LINES + 1)
            assert page.lines() == want[after : after + BLOCK_LINES + 1]
    finally:
        store.close()


def test_batches_of_a_few_lines_are_merged_at_each_multiple_of_short_block(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        p = store.create_project("few")
        store.create_experiment(p.id)
        count = 2 * SHORT_BLOCK + 44
        for seq in range(0, count, 2):
            store.append_logs(p.id, 1, LogBatch("c", seq, _lines(seq, 2)))
        assert _block_sizes(store) == [SHORT_BLOCK, SHORT_BLOCK] + [2] * 22
        want = [LogLine(x.time, x.stream, x.level, x.message, i + 1)
                for i, x in enumerate(_lines(0, count))]  # fmt: skip
        assert _every_line(store, p.id, 1) == want
    finally:
        store.close()


def test_the_migration_goes_down_and_up_keeping_every_line(db_url: str) -> None:
    store = SqlStore.open(db_url)
    p = store.create_project("down")
    for number, count in ((1, 10), (2, 0), (3, BLOCK_LINES + 2)):
        store.create_experiment(p.id)
        if count:
            store.append_logs(p.id, number, LogBatch("c", 0, _lines(0, count)))
    before = {n: _every_line(store, p.id, n) for n in (1, 2, 3)}
    store.close()
    migrate(db_url, "0015_wide_counts", down=True)
    store = SqlStore.open(db_url)  # upgraded to the head again
    try:
        assert {n: _every_line(store, p.id, n) for n in (1, 2, 3)} == before
        assert _block_sizes(store) == [10, BLOCK_LINES, 2]
        store.append_logs(p.id, 1, LogBatch("c", 1, _lines(10, 2)))
        assert [x.seq for x in _every_line(store, p.id, 1)] == list(range(1, 13))
    finally:
        store.close()


def test_long_messages_cut_a_block_at_block_chars_in_the_store_and_the_migration(
    db_url: str,
) -> None:
    """Lines of up to MAX_LOG_MESSAGE_LEN characters, 4,096 to a block, would pass the
    databases' 1 GB value limit: a block also ends before its messages pass BLOCK_CHARS
    characters, in the store and in the migration alike."""
    per_block = BLOCK_CHARS // MAX_LOG_MESSAGE_LEN
    count = per_block + 3
    lines = tuple(
        LogLine(1.0 + i, "stdout", "INFO", chr(97 + i % 26) * MAX_LOG_MESSAGE_LEN)
        for i in range(count)
    )
    want = [LogLine(x.time, x.stream, x.level, x.message, i + 1) for i, x in enumerate(lines)]
    store = SqlStore.open(db_url)
    p = store.create_project("long")
    store.create_experiment(p.id)
    store.append_logs(p.id, 1, LogBatch("c", 0, lines))
    try:
        assert _block_sizes(store) == [per_block, 3]
        assert _every_line(store, p.id, 1) == want
    finally:
        store.close()
    migrate(db_url, "0015_wide_counts", down=True)
    store = SqlStore.open(db_url)  # upgraded again: the migration cuts the same way
    try:
        assert _block_sizes(store) == [per_block, 3]
        assert _every_line(store, p.id, 1) == want
    finally:
        store.close()

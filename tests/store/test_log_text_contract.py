"""Log lines keep any text exactly, through the Store interface: NUL and invalid UTF-8 (lone
surrogates from ``surrogateescape`` decoding, or bytes) on SQLite and PostgreSQL. The server
runs it through HttpStore and the real app (tests/server/test_inprocess_liveness.py) and
against real servers (tests/reliability/test_log_text.py)."""

from __future__ import annotations

from mltrail.core.types import LogBatch, LogLine
from mltrail.store.base import Store
from support.factories import T0, log_batch

INVALID_UTF8 = b"bad bytes \xff\xfe\xc3( end".decode("utf-8", "surrogateescape")

ODD_TEXTS = [
    "a\x00b",
    "\x00",
    INVALID_UTF8,
    "\ud800 a lone high surrogate, \udfff a low one",
    "nul \x00 and \udcff together, with C:\\path\\0 and \\x41 that look escaped",
    "\\0 \\\\ \\xff \\u0041 only backslashes, nothing to escape",
    "ünïcødé 🙂 \t tabs \x1b[31m ansi",
    "",
]


def _experiment(store: Store):
    return store.create_experiment(store.create_project("text").id)


def test_any_text_round_trips_exactly(store: Store) -> None:
    exp = _experiment(store)
    p, e = exp.project_id, exp.experiment_id
    assert store.append_logs(p, e, log_batch("c", 1, *ODD_TEXTS)) == len(ODD_TEXTS)
    assert [line.message for line in store.read_logs(p, e)] == ODD_TEXTS
    assert [line.message for line in store.tail_logs(p, e).lines] == ODD_TEXTS


def test_bytes_are_kept_as_text_that_encodes_back_to_them(store: Store) -> None:
    exp = _experiment(store)
    raw = b"\x00\xff\xfe ok \xe2\x82"
    line = LogLine(T0, "stdout", "INFO", raw)  # type: ignore[arg-type] # capture may hand bytes
    store.append_logs(exp.project_id, exp.experiment_id, LogBatch("c", 1, (line,)))
    (stored,) = store.read_logs(exp.project_id, exp.experiment_id)
    assert stored.message.encode("utf-8", "surrogateescape") == raw


def test_a_batch_of_odd_text_never_blocks_the_batches_after_it(store: Store) -> None:
    exp = _experiment(store)
    p, e = exp.project_id, exp.experiment_id
    assert store.append_logs(p, e, log_batch("c", 1, "before", "a\x00b", INVALID_UTF8)) == 3
    assert store.append_logs(p, e, log_batch("c", 2, "after")) == 1
    assert store.append_logs(p, e, log_batch("c", 1, "replayed")) == 0  # stored once
    lines = store.read_logs(p, e)
    assert [(x.seq, x.message) for x in lines] == [
        (1, "before"),
        (2, "a\x00b"),
        (3, INVALID_UTF8),
        (4, "after"),
    ]


def test_odd_stream_names_are_stored_with_a_replacement_character(store: Store) -> None:
    exp = _experiment(store)
    line = LogLine(T0, "log\x00ger\udcff", "INFO", "m")
    store.append_logs(exp.project_id, exp.experiment_id, LogBatch("c", 1, (line,)))
    (stored,) = store.read_logs(exp.project_id, exp.experiment_id)
    assert stored.stream == "log\ufffdger\ufffd"

"""Exact log text (core/text.py), the liveness rules' numbers (core/liveness.py) and
MLTRAIL_CRASH_AFTER in Settings."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mltrail.config import DEFAULT_CRASH_AFTER_SECONDS, Settings
from mltrail.core import codec
from mltrail.core.liveness import ending_note, heartbeat_interval, stop_grace
from mltrail.core.text import as_text, escape_text, unescape_text
from mltrail.core.types import LogLine, Status

# every code point, lone surrogates included (hypothesis leaves them out by default)
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))


@given(ANY_TEXT)
def test_any_text_escapes_to_storable_utf8_and_back_exactly(text: str) -> None:
    escaped, flagged = escape_text(text)
    escaped.encode("utf-8")  # strict: no lone surrogate is left
    assert "\x00" not in escaped
    assert unescape_text(escaped, flagged) == text
    assert flagged == any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(st.binary())
def test_any_bytes_come_back_from_their_text(raw: bytes) -> None:
    escaped, flagged = escape_text(as_text(raw))
    assert unescape_text(escaped, flagged).encode("utf-8", "surrogateescape") == raw


@given(st.text())  # valid text without NUL: nearly every line
def test_ordinary_text_is_stored_unchanged_and_unflagged(text: str) -> None:
    if "\x00" not in text:
        assert escape_text(text) == (text, False)


def test_the_escape_is_the_documented_one() -> None:
    text = "a\\b\x00c" + b"\xff".decode("utf-8", "surrogateescape") + "\ud800"
    assert escape_text(text) == ("a\\\\b\\0c\\xff\\ud800", True)


@given(ANY_TEXT)
def test_log_lines_travel_as_strict_utf8_json_and_come_back_exactly(text: str) -> None:
    wire = codec.log_line_to_wire(LogLine(1.0, "stdout", "INFO", text, seq=3))
    assert wire.get("escaped", False) == escape_text(text)[1]
    back = codec.log_line_from_wire(codec.parse_json(orjson.dumps(wire)))  # orjson: strict
    assert back == LogLine(1.0, "stdout", "INFO", text, seq=3)


def test_heartbeats_come_several_times_within_crash_after() -> None:
    assert heartbeat_interval(DEFAULT_CRASH_AFTER_SECONDS) == 10.0
    assert stop_grace(DEFAULT_CRASH_AFTER_SECONDS) == 30.0
    for crash_after in (1.0, 3.0, 20.0, 300.0, 3600.0):
        assert heartbeat_interval(crash_after) <= crash_after / 4
        assert 2 * heartbeat_interval(crash_after) <= stop_grace(crash_after) <= crash_after


def test_only_a_crashed_run_gets_an_ending_note() -> None:
    assert ending_note(Status.DONE, 1.0) is None and ending_note(Status.STOPPED, None) is None
    assert ending_note(Status.CRASHED, 1_700_000_000.0).startswith(
        "experiment crashed: no heartbeat since 20"
    )
    assert Status.CRASHED.is_final


def test_crash_after_is_read_from_the_environment_and_written_for_children() -> None:
    assert Settings.from_env({}).crash_after == DEFAULT_CRASH_AFTER_SECONDS
    settings = Settings.from_env({"MLTRAIL_CRASH_AFTER": "2.5"})
    assert settings.crash_after == 2.5
    assert Settings.from_env(settings.to_env()).crash_after == 2.5
    assert "MLTRAIL_CRASH_AFTER" not in Settings().to_env()


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "nan", "inf"])
def test_a_bad_crash_after_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="MLTRAIL_CRASH_AFTER: must be a positive number"):
        Settings.from_env({"MLTRAIL_CRASH_AFTER": raw})

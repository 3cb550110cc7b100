"""Threads logging at once past the writer's catch-up mark wait for its next take
(:class:`mltrail.sdk.priority.CatchUp`); a thread logging alone never does."""

from __future__ import annotations

import threading
import time

from mltrail.sdk import priority as priority_module
from mltrail.sdk.priority import CatchUp
from mltrail.sdk.spool import Spool, target_of
from mltrail.sdk.writer import CATCH_UP_CALL_SECONDS, Writer


def _wait_on_another_thread(catch_up: CatchUp) -> tuple[threading.Thread, list[bool]]:
    answers: list[bool] = []
    thread = threading.Thread(target=lambda: answers.append(catch_up.wait()))
    thread.start()
    return thread, answers


def test_a_thread_alone_past_the_mark_never_waits(monkeypatch):
    monkeypatch.setattr(priority_module, "CATCH_UP_SECONDS", 30.0)
    catch_up = CatchUp()
    started = time.monotonic()
    assert not any(catch_up.wait() for _ in range(1_000))
    assert time.monotonic() - started < 10


def test_a_second_thread_past_the_mark_waits_for_the_take(monkeypatch):
    monkeypatch.setattr(priority_module, "CATCH_UP_SECONDS", 30.0)
    catch_up = CatchUp()
    assert not catch_up.wait()  # the first thread past it goes on
    thread, answers = _wait_on_another_thread(catch_up)
    thread.join(0.2)
    assert thread.is_alive(), "the second thread went on before the take"
    catch_up.taken()
    thread.join(10)
    assert answers == [True]
    assert not catch_up.wait(), "after a take the count starts over"


def test_once_two_are_past_the_first_waits_too_at_most_the_limit(monkeypatch):
    monkeypatch.setattr(priority_module, "CATCH_UP_SECONDS", 0.05)
    catch_up = CatchUp()
    assert not catch_up.wait()
    thread, answers = _wait_on_another_thread(catch_up)
    thread.join(10)
    assert answers == [False]  # no take came: it went on at the limit
    started = time.monotonic()
    assert not catch_up.wait()
    assert time.monotonic() - started >= 0.04, "the first thread did not wait once two were past"


class _CountedCatchUp:
    def __init__(self) -> None:
        self.asked = 0

    def wait(self) -> bool:
        self.asked += 1
        return False

    def taken(self) -> None:
        pass


def test_logging_asks_to_catch_up_only_with_a_writers_thread_and_a_store_answering_fast(settings):
    writer = Writer(object(), 1, 1, spool=Spool.from_settings(settings),  # type: ignore[arg-type]
                    target=target_of(settings), batch_points=100)  # fmt: skip
    counted = writer._catch_up = _CountedCatchUp()  # type: ignore[assignment]

    def log(calls: int) -> None:
        for i in range(calls):
            writer.add_points("train", i, -1, 0.0, {"loss": float(i)})

    log(150)  # past the mark (120 points), no thread to take them (a forked child's copy)
    assert counted.asked == 0
    writer._thread = threading.current_thread()  # as if started (it never drains here)
    writer._busy_since = time.monotonic() - CATCH_UP_CALL_SECONDS  # a store call this long
    log(10)
    assert counted.asked == 0, "asked while the store was slow to answer"
    writer._busy_since = time.monotonic()  # one just started
    log(10)
    assert counted.asked == 10
    writer._busy_since = None
    writer._take_calls()  # below the mark again
    log(50)
    assert counted.asked == 10

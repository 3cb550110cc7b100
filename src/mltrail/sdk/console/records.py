"""``logging`` records as log lines, each once, with its logger name and level.

Two hooks, installed while any console capture runs and removed after the last one:

- the log record factory (``logging.setLogRecordFactory``): every record a logger creates is
  recorded as it is created. No handler is added, so the user's logging set-up is untouched:
  ``logging.basicConfig`` after ``mltrail.start`` still works, and a warning logged without any
  handler is still printed by Python's last-resort handler.
- ``logging.StreamHandler.format``: a stream handler writing to a captured stdout/stderr notes
  the text it is about to write, so that console echo of an already recorded record is not
  recorded again as a ``stderr`` line (see :class:`~mltrail.sdk.console.lines.Echoes`). Only
  the echo is dropped: the console shows it as before.

Records of the SDK's own logger and of its dependencies (:data:`UNRECORDED_LOGGERS`) are never
recorded, and their echoes are dropped all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from mltrail.core.types import LOG_LEVELS, LogLine

UNRECORDED_LOGGERS = frozenset({"mltrail", "httpx", "httpcore", "alembic", "urllib3", "sqlalchemy"})
QUIETED_LOGGERS = ("httpx", "httpcore", "alembic", "urllib3", "sqlalchemy")
_MESSAGE = logging.Formatter("%(message)s")  # the message plus any traceback, no prefix
_LEVELS_DOWN = tuple((getattr(logging, name), name) for name in reversed(LOG_LEVELS))


class Capture(Protocol):
    """What the hooks need of an active console capture."""

    def record(self, line: LogLine) -> None: ...

    def note_echo(self, stream: Any, text: str) -> None: ...


_active: list[Capture] = []
_previous_factory: Callable[..., logging.LogRecord] | None = None
_factory_installed = False
_previous_format: Any = None
_format_installed = False


def quiet_library_loggers() -> None:
    """Keep mltrail's dependencies quiet below WARNING, unless the script set their level.

    With ``logging.basicConfig(level=logging.INFO)`` (common in training scripts) Alembic would
    print its migration steps at every embedded start and httpx a line per upload.
    """
    for name in QUIETED_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def is_unrecorded(logger_name: str) -> bool:
    return logger_name.partition(".")[0] in UNRECORDED_LOGGERS


def activate(capture: Capture) -> None:
    """Hand log records to ``capture.record`` and note echoes until :func:`deactivate`."""
    global _previous_factory, _factory_installed, _previous_format, _format_installed
    _active.append(capture)
    if not _factory_installed:
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_record_factory)
        _factory_installed = True
    if not _format_installed:
        _previous_format = logging.StreamHandler.__dict__.get("format")
        logging.StreamHandler.format = _format_noting_echo  # type: ignore[method-assign,assignment]
        _format_installed = True


def deactivate(capture: Capture) -> None:
    """Stop recording into ``capture``; the last one out removes the hooks where it can.

    A hook someone else wrapped since stays in place, passive (nothing is active), so their
    chain keeps working; a later capture then reuses it instead of wrapping it again.
    """
    global _factory_installed, _format_installed
    if capture in _active:
        _active.remove(capture)
    if _active:
        return
    if _factory_installed and logging.getLogRecordFactory() is _record_factory:
        logging.setLogRecordFactory(_previous_factory or logging.LogRecord)
        _factory_installed = False
    if _format_installed and logging.StreamHandler.__dict__.get("format") is _format_noting_echo:
        if _previous_format is None:
            del logging.StreamHandler.format
        else:
            logging.StreamHandler.format = _previous_format  # type: ignore[method-assign]
        _format_installed = False


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = (_previous_factory or logging.LogRecord)(*args, **kwargs)
    name = record.name
    if _active and name is not None and not is_unrecorded(name):  # makeLogRecord passes None
        line = LogLine(record.created, name, _level(record.levelno), _message(record))
        for capture in list(_active):
            capture.record(line)
    return record


def _format_noting_echo(self: logging.StreamHandler, record: logging.LogRecord) -> str:
    text = (_previous_format or logging.Handler.format)(self, record)
    if _active:
        stream = getattr(self, "stream", None)  # the last-resort handler's is a property
        for capture in list(_active):
            capture.note_echo(stream, text)
    return text


def _message(record: logging.LogRecord) -> str:
    try:
        return _MESSAGE.format(record)
    except Exception:  # bad format arguments: logging reports those itself, at emit time
        return str(record.msg)


def _level(levelno: int) -> str:
    """The standard level at or below ``levelno`` (custom levels such as TRACE=5 fold down)."""
    for number, name in _LEVELS_DOWN:
        if levelno >= number:
            return name
    return LOG_LEVELS[0]

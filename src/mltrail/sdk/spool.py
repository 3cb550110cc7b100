"""The local spool: batches the store could not take wait in files until ``sync`` uploads them.

Each unsent batch is one JSON file under ``settings.spool_dir`` holding everything needed to
replay it: the target (server URL or embedded database), the experiment, and the batch with its
``(client_id, seq)`` in the REST API's wire form (:mod:`mltrail.core.codec`), so a batch replayed
twice is still stored once. When the spool outgrows ``settings.spool_limit_bytes`` the oldest
files are dropped, with a warning.

Order is never the wall clock, which jumps (NTP, a VM resumed, a user setting it): a file name
starts with ``b<boot>-<monotonic ns>``, where ``<monotonic ns>`` is the system-wide monotonic
clock when the batch was cut (:func:`order_stamp`, comparable between processes of one boot) and
``<boot>`` numbers the machine's boots in the order this spool first saw them (the ``boots``
file). So sorting the names gives the order batches were cut in, across processes and reboots.
Names from older mltrail versions (a wall-clock stamp first) sort before every new one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.core.errors import MltrailError, TransportError
from mltrail.core.wire import dump_json
from mltrail.sdk.records import SPOOL_VERSION

if TYPE_CHECKING:
    from mltrail.config import Settings

SUFFIX = ".json"
REJECTED_DIR = "rejected"
BOOTS_FILE = "boots"
SYNC_LOCK_FILE = "sync.lock"
_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
_PROCESS_BOOT = f"process-{uuid.uuid4().hex}"  # where the boot is unknown: each process is one


def order_stamp() -> int:
    """The spool's order key of a batch cut now: the monotonic clock in ns (no I/O, so the
    training thread may call it)."""
    return time.monotonic_ns()


def _boot_id() -> str:
    """This boot's id (Linux); elsewhere one per process, which keeps order within a process."""
    try:
        return _BOOT_ID_FILE.read_text().strip() or _PROCESS_BOOT
    except OSError:
        return _PROCESS_BOOT


def _order_key(path: Path) -> tuple[int, str]:
    """Files sort by name; older versions' names (a wall-clock stamp first) before all others."""
    return (0 if path.name[:1].isdigit() else 1, path.name)


class SpoolWarning(UserWarning):
    """Something happened to spooled data that the user should know about."""


def is_transient(exc: BaseException) -> bool:
    """True for faults worth retrying: transport errors and anything not an mltrail error."""
    if isinstance(exc, TransportError):
        return True
    return not isinstance(exc, MltrailError)


def target_of(settings: Settings) -> str:
    """Where spooled batches belong when the store's identity is unknown (a run started
    offline): the server's URL or the embedded database's."""
    return settings.url.rstrip("/") if settings.url else settings.db_url


def identity_target(store_id: str) -> str:
    """Where spooled batches belong: the store's identity (``store.store_identity()``), the same
    whichever URL reaches it (``localhost`` or ``127.0.0.1``, another port)."""
    return f"store:{store_id}"


@dataclass
class RunAddress:
    """Where one run's spooled batches belong, shared by its writer, spooler and uploader.

    Attributes:
        target: the store's name in the spool (see :func:`target_of`).
        ref: ``(project_id, experiment_id)``; ``None`` while a run started offline has no
            number yet (set in one assignment once it has, so readers never see half of it).
        run: the client-generated id of a run started offline (``None`` otherwise).
    """

    target: str
    ref: tuple[int, int] | None
    run: str | None = None

    def body(self) -> dict[str, Any]:
        """The file fields that say where a batch belongs."""
        ref = self.ref
        where: dict[str, Any] = {
            "target": self.target,
            "project_id": None if ref is None else ref[0],
            "experiment_id": None if ref is None else ref[1],
        }
        if self.run is not None:
            where["run"] = self.run
        return where


class Spool:
    """A directory of unsent batches, bounded in size.

    Args:
        directory: where the files live (created on first write).
        limit_bytes: total size above which the oldest files are dropped.
    """

    _counter = itertools.count()
    _lock = threading.Lock()

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        self.directory = Path(directory)
        self.limit_bytes = limit_bytes
        self._boot: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Spool:
        return cls(settings.spool_dir, settings.spool_limit_bytes)

    # --- writing -------------------------------------------------------------------------------
    def write(
        self,
        address: RunAddress,
        client_id: str,
        record: dict[str, Any],
        *,
        stamp: int | None = None,
        refused: str | None = None,
    ) -> Path | None:
        """Append one record (see :mod:`mltrail.sdk.records`) to the spool.

        Args:
            address: where the record belongs.
            client_id: the writer (or uploader) that spools it; its files sort together.
            record: the batch, as ``records.encode_metrics`` and friends make it.
            stamp: the order key (:func:`order_stamp`) the file sorts by; now by default.
            refused: the store's answer to a batch it refused: the file goes to ``rejected/``
                (never replayed, outside the limit) with this reason beside it.

        Returns:
            The file written, or ``None`` when the record alone is over the limit.
        """
        body = {"version": SPOOL_VERSION, **address.body(), "client_id": client_id, **record}
        data = dump_json(body)
        if refused is not None:
            return self._write_refused(client_id, data, refused)
        if len(data) > self.limit_bytes:
            warnings.warn(
                f"mltrail spool: a {record['kind']} batch of {len(data)} bytes is over the spool "
                f"limit of {self.limit_bytes} bytes and was dropped",
                SpoolWarning,
                stacklevel=2,
            )
            return None
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._make_room(len(data))
            path = self.directory / self._name(client_id, stamp)
            _write_whole(path, data)
        return path

    def keep_refused(
        self, address: RunAddress, client_id: str, record: dict[str, Any], exc: Exception
    ) -> str:
        """Keep a batch the store refused in ``rejected/`` with its answer; where it went, for
        the warning (a full or unwritable spool loses it, and the answer says so)."""
        try:
            return str(
                self.write(address, client_id, record, refused=f"refused by the store: {exc}")
            )
        except OSError as error:
            return f"nowhere (the spool could not be written: {error})"

    def _name(self, client_id: str, stamp: int | None) -> str:
        """A new file's name, sorting in cut order (with the class lock held)."""
        when = order_stamp() if stamp is None else stamp
        boot = self._boot_number()
        return f"b{boot:06d}-{when:020d}-{client_id}-{next(self._counter):06d}{SUFFIX}"

    def _boot_number(self) -> int:
        """This boot's number in the spool's ``boots`` file (1 for the first boot it saw),
        added when new; read once per process (with the class lock held)."""
        if self._boot is None:
            boot_id = _boot_id()
            path = self.directory / BOOTS_FILE
            with path.open("a+", encoding="utf-8") as f, _file_lock(f):
                f.seek(0)
                boots = f.read().split()
                if boot_id not in boots:
                    f.write(boot_id + "\n")
                    boots.append(boot_id)
            self._boot = boots.index(boot_id) + 1
        return self._boot

    def _make_room(self, incoming: int) -> None:
        files = self.files()
        sizes = {p: _size(p) for p in files}
        total = sum(sizes.values())
        for oldest in files:
            if total + incoming <= self.limit_bytes:
                return
            total -= sizes[oldest]
            oldest.unlink(missing_ok=True)
            warnings.warn(
                f"mltrail spool over its limit of {self.limit_bytes} bytes: dropped the oldest "
                f"unsent batch {oldest.name} ({sizes[oldest]} bytes); raise "
                "MLTRAIL_SPOOL_LIMIT_BYTES or run `mltrail sync` sooner",
                SpoolWarning,
                stacklevel=3,
            )

    # --- reading -------------------------------------------------------------------------------
    def files(self, client_id: str | None = None) -> list[Path]:
        """Spooled files, oldest first; only one writer's when ``client_id`` is given."""
        if not self.directory.is_dir():
            return []
        pattern = f"*-{client_id}-*{SUFFIX}" if client_id else f"*{SUFFIX}"
        return sorted(self.directory.glob(pattern), key=_order_key)

    def size_bytes(self) -> int:
        return sum(_size(p) for p in self.files())

    def set_aside(self, path: Path, reason: str) -> Path:
        """Move a spool file the store refused (or that cannot be read) to ``rejected/``, with
        ``reason`` beside it (``<name>.error``), so later files go on. Returns its new path."""
        dest = self.directory / REJECTED_DIR / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        dest.with_suffix(".error").write_text(reason + "\n", encoding="utf-8")
        return dest

    def _write_refused(self, client_id: str, data: bytes, reason: str) -> Path:
        with self._lock:
            folder = self.directory / REJECTED_DIR
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self._name(client_id, None)
            _write_whole(path, data)
        path.with_suffix(".error").write_text(reason + "\n", encoding="utf-8")
        return path

    @contextlib.contextmanager
    def sync_lock(self) -> Iterator[None]:
        """Held by a whole-spool sync, so two syncs (or a sync and a starting run's background
        sync) never replay the same files at once."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / SYNC_LOCK_FILE).open("a") as f, _file_lock(f):
            yield

    def rejected(self) -> list[Path]:
        """Files set aside in ``rejected/``, oldest first."""
        folder = self.directory / REJECTED_DIR
        return sorted(folder.glob(f"*{SUFFIX}"), key=_order_key) if folder.is_dir() else []

    def requeue_rejected(self) -> int:
        """Move every file of ``rejected/`` back into the spool (its ``.error`` note removed),
        for a sync after the cause is fixed (a deleted project restored, say); its name keeps
        its place in cut order. Returns how many. Replays stay idempotent: a batch the store
        already holds is not stored twice."""
        with self.sync_lock():
            moved = self.rejected()
            for path in moved:
                os.replace(path, self.directory / path.name)
                path.with_suffix(".error").unlink(missing_ok=True)
        return len(moved)


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a kill leaves a ``.tmp`` at most, and a
    failed write (full disk) removes its partial copy before raising."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _file_lock(f: Any) -> Iterator[None]:
    """An exclusive lock on an open file between processes (POSIX; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0

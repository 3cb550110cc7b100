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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.core import codec
from mltrail.core.errors import (
    AuthenticationError,
    MltrailError,
    PermissionDeniedError,
    TransportError,
)
from mltrail.core.types import LogBatch, MetricBatch, Status
from mltrail.core.wire import dump_json, parse_json

if TYPE_CHECKING:
    from mltrail.config import Settings
    from mltrail.store.base import Store

SPOOL_VERSION = 2  # 1: log lines as [time, stream, level, message] lists
SUFFIX = ".json"
REJECTED_DIR = "rejected"
BOOTS_FILE = "boots"
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


@dataclass
class SyncResult:
    """What one ``sync`` did.

    Attributes:
        sent: files uploaded and removed.
        points / lines: metric points and log lines stored by those uploads (0 for replays the
            store had already seen).
        remaining: files left because the store is unreachable.
        other_target: files spooled for another server or database, left alone.
        rejected: files the store refused (moved to ``spool/rejected``).
        errors: one message per problem met.
    """

    sent: int = 0
    points: int = 0
    lines: int = 0
    remaining: int = 0
    other_target: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def is_transient(exc: BaseException) -> bool:
    """True for faults worth retrying: transport errors and anything not an mltrail error."""
    if isinstance(exc, TransportError):
        return True
    return not isinstance(exc, MltrailError)


def target_of(settings: Settings) -> str:
    """The string that says where spooled batches belong: server URL or embedded database."""
    return settings.url.rstrip("/") if settings.url else settings.db_url


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
        target: str,
        project_id: int,
        experiment_id: int,
        client_id: str,
        record: dict[str, Any],
        *,
        stamp: int | None = None,
    ) -> Path | None:
        """Append one record (see :func:`encode_metrics` and friends) to the spool.

        Args:
            target / project_id / experiment_id / client_id: where the record belongs.
            record: the batch, as :func:`encode_metrics` and friends make it.
            stamp: the order key (:func:`order_stamp`) the file sorts by; now by default.

        Returns:
            The file written, or ``None`` when the record alone is over the limit.
        """
        body = {
            "version": SPOOL_VERSION,
            "target": target,
            "project_id": project_id,
            "experiment_id": experiment_id,
            "client_id": client_id,
            **record,
        }
        data = dump_json(body)
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
            when = order_stamp() if stamp is None else stamp
            boot = self._boot_number()
            name = f"b{boot:06d}-{when:020d}-{client_id}-{next(self._counter):06d}{SUFFIX}"
            path = self.directory / name
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # a kill mid-write leaves a .tmp, never half a batch
        return path

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

    def replay(self, store: Store, target: str, *, client_id: str | None = None) -> SyncResult:
        """Upload spooled files for ``target`` in order, removing each once stored.

        Stops at the first transient fault (the rest stay for next time). Files the store
        rejects as invalid move to ``rejected/``. Authentication and permission errors raise.
        """
        result = SyncResult()
        pending = self.files(client_id)
        for index, path in enumerate(pending):
            body = _read(path)
            if body is None:
                continue
            if body.get("target") != target:
                result.other_target += 1
                continue
            try:
                stored = apply_record(store, body)
            except (AuthenticationError, PermissionDeniedError):
                raise
            except Exception as exc:
                if is_transient(exc):
                    result.remaining += len(pending) - index
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    return result
                self._reject(path, exc, result)
                continue
            path.unlink(missing_ok=True)
            result.sent += 1
            key = "points" if body["kind"] == "metrics" else "lines"
            if body["kind"] in ("metrics", "logs"):
                setattr(result, key, getattr(result, key) + stored)
        return result

    def _reject(self, path: Path, exc: Exception, result: SyncResult) -> None:
        rejected = self.directory / REJECTED_DIR
        rejected.mkdir(exist_ok=True)
        os.replace(path, rejected / path.name)
        result.rejected += 1
        message = f"{path.name} rejected by the store ({exc}); kept in {rejected}"
        result.errors.append(message)
        warnings.warn(f"mltrail spool: {message}", SpoolWarning, stacklevel=3)


def sync(store: Store, settings: Settings) -> SyncResult:
    """Upload every spooled batch that belongs to the store ``settings`` select.

    Args:
        store: the store to upload into (the one ``open_store(settings)`` gives).
        settings: where the spool lives and which target it is for.

    Returns:
        What was sent, what remains and what was rejected.
    """
    return Spool.from_settings(settings).replay(store, target_of(settings))


def sync_in_background(store: Store, settings: Settings) -> None:
    """Upload what earlier runs left in the spool, without delaying this one."""
    if not Spool.from_settings(settings).files():  # the common case costs one listdir
        return

    def run() -> None:
        with contextlib.suppress(Exception):  # `mltrail sync` reports problems; a run must not
            sync(store, settings)

    threading.Thread(target=run, name="mltrail-spool-sync", daemon=True).start()


# --- records ------------------------------------------------------------------------------------
def encode_metrics(batch: MetricBatch) -> dict[str, Any]:
    """A metric batch as a JSON-ready record: its wire form, arrays packed exactly."""
    return {"kind": "metrics", **codec.metric_batch_to_wire(batch)}


def encode_logs(batch: LogBatch) -> dict[str, Any]:
    return {"kind": "logs", **codec.log_batch_to_wire(batch)}


def encode_link(weights_hash: str, iteration: int | None, epoch: int | None) -> dict[str, Any]:
    return {"kind": "link", "weights_hash": weights_hash, "iteration": iteration, "epoch": epoch}


def encode_status(status: Status) -> dict[str, Any]:
    return {"kind": "status", "status": Status(status).value}


def decode_metrics(body: dict[str, Any]) -> MetricBatch:
    return codec.metric_batch_from_wire(body)


def decode_logs(body: dict[str, Any]) -> LogBatch:
    if body.get("version", SPOOL_VERSION) < 2:  # written by an older mltrail
        keys = ("time", "stream", "level", "message")
        body = {**body, "lines": [dict(zip(keys, line, strict=True)) for line in body["lines"]]}
    return codec.log_batch_from_wire(body)


def apply_record(store: Store, body: dict[str, Any]) -> int:
    """Send one spooled record to the store; returns points or lines stored (0 otherwise)."""
    p, e, kind = int(body["project_id"]), int(body["experiment_id"]), body["kind"]
    if kind == "metrics":
        return store.append_points(p, e, decode_metrics(body))
    if kind == "logs":
        return store.append_logs(p, e, decode_logs(body))
    if kind == "link":
        store.link_weights_hash(
            p, e, body["weights_hash"], iteration=body["iteration"], epoch=body["epoch"]
        )
        return 0
    if kind == "status":
        store.update_experiment(p, e, status=Status(body["status"]))
        return 0
    if kind == "artifact":  # a reference to a kept file, never its bytes (sdk/uploads.py)
        from mltrail.sdk.uploads import apply_artifact

        return apply_artifact(store, body)
    raise ValueError(f"unknown spool record kind {kind!r}")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return parse_json(path.read_bytes())
    except FileNotFoundError:  # another sync took it
        return None
    except ValueError:
        warnings.warn(
            f"mltrail spool: {path.name} is unreadable, skipped", SpoolWarning, stacklevel=3
        )
        return None


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

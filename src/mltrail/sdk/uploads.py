"""The upload queue: artifact files leave the training thread as a local file and a queue entry.

``exp.log_artifact`` / ``exp.log_checkpoint`` write one local file (a copy, or the model saved)
and append a :class:`PendingUpload`; this module's daemon thread then computes what needs
reading the file (a checkpoint's weights hash, the sha256) and streams it to the store. Faults
are retried with backoff; when the store stays unreachable the upload is spooled as a small JSON
record naming the kept file (never the bytes), and ``mltrail sync`` or the next run uploads it.
Putting the same bytes at the same path twice stores them once, so a replay after a lost answer
changes nothing: every artifact is stored exactly once.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mltrail.api.artifacts import file_sha256
from mltrail.core.artifacts import artifact_upload
from mltrail.core.errors import TransportError, ValidationError
from mltrail.sdk.spool import RunAddress, Spool, SpoolWarning, is_transient

if TYPE_CHECKING:
    from mltrail.store.base import Store

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
UPLOAD_NICE = 10  # the upload thread yields the CPU to training where SCHED_IDLE is refused
CLOSE_TIMEOUT_SECONDS = 300.0


@dataclass
class PendingUpload:
    """One file waiting for the uploader.

    Attributes:
        file: the local file to send.
        name: its artifact path (checked).
        owned: the file is the SDK's own copy, deleted once stored.
        iteration / epoch: the training point.
        framework: for a checkpoint, how to read its weights hash from the file.
        weights_hash / sha256 / size: filled in by the uploader thread.
        result: resolves to the weights hash (checkpoints) or the sha256 once computed.
        snapshot: a PyTorch model's state_dict copied in memory at the call, not yet written to
            ``file`` (the uploader thread writes it, hashing as it goes).
    """

    file: Path
    name: str
    owned: bool
    iteration: int | None = None
    epoch: int | None = None
    framework: str | None = None
    weights_hash: str | None = None
    sha256: str | None = None
    size: int | None = None
    result: Future[str] = field(default_factory=Future)
    snapshot: dict[str, Any] | None = None


def encode_upload(item: PendingUpload) -> dict[str, Any]:
    """The spool record of an upload: the kept file's path and the metadata, not the bytes."""
    return {
        "kind": "artifact",
        "file": str(item.file),
        "path": item.name,
        "owned": item.owned,
        "iteration": item.iteration,
        "epoch": item.epoch,
        "framework": item.framework,
        "weights_hash": item.weights_hash,
        "sha256": item.sha256,
        "size": item.size,
    }


def prepare(item: PendingUpload) -> None:
    """Read what the upload declares from its file: the weights hash, then the sha256 (a
    snapshot's from the copy in memory, then written to its file)."""
    if item.snapshot is not None:
        write_snapshot(item)
        return
    if item.framework is not None and item.weights_hash is None:
        from mltrail.checkpoints import weights_hash_from_file

        item.weights_hash = weights_hash_from_file(item.framework, item.file)
    if item.sha256 is None:
        item.sha256, item.size = file_sha256(item.file)


def write_snapshot(item: PendingUpload) -> None:
    """Write a snapshot to its file: the weights hash from the copy, the sha256 while writing."""
    from mltrail.core.weights import weights_hash
    from mltrail.sdk.checkpoint_files import save_snapshot

    snapshot, item.snapshot = item.snapshot, None
    if snapshot is not None:
        item.weights_hash = weights_hash(snapshot)
        try:
            item.sha256, item.size = save_snapshot(snapshot, item.file)
        except BaseException:
            item.file.unlink(missing_ok=True)  # never uploaded half written
            raise


def put(store: Store, project_id: int, experiment_id: int, item: PendingUpload) -> None:
    """One upload of a prepared item (the kept copy is deleted once stored)."""
    upload = artifact_upload(
        item.name,
        size=item.size,
        sha256_value=item.sha256,
        iteration=item.iteration,
        epoch=item.epoch,
        weights_hash_value=item.weights_hash,
    )
    with item.file.open("rb") as handle:
        store.put_artifact(project_id, experiment_id, upload, KeptFile(handle))
    if item.owned:
        item.file.unlink(missing_ok=True)


class KeptFile:
    """A prepared upload's file as the store's source (a :class:`SendableFile`): its digest is
    declared already, so a store reaching the server directly sends it with ``sendfile`` (the
    kernel copies from the page cache) instead of reading it into Python 1 MiB at a time."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def read(self, size: int = -1, /) -> bytes:
        return self._handle.read(size)

    def readinto(self, buffer: Any, /) -> int | None:
        return self._handle.readinto(buffer)  # type: ignore[attr-defined]

    def claim_file(self) -> BinaryIO:
        return self._handle


def read_upload(body: dict[str, Any]) -> PendingUpload:
    """A spooled upload record (``encode_upload``) back as the item to upload."""
    keys = ("iteration", "epoch", "framework", "weights_hash", "sha256", "size")
    item = PendingUpload(Path(body["file"]), str(body["path"]), bool(body["owned"]))
    for key in keys:
        setattr(item, key, body.get(key))
    return item


def apply_upload(store: Store, p: int, e: int, item: PendingUpload) -> int:
    """Replay a spooled upload into experiment ``(p, e)`` (the spool's replay calls it)."""
    if not item.file.is_file():
        stored = store.list_artifacts(p, e)
        if any(a.path == item.name and a.sha256 == item.sha256 for a in stored):
            return 0  # uploaded already; only the spool record was left behind
        raise ValidationError(f"the file to upload is gone: {item.file}", "file")
    prepare(item)
    put(store, p, e, item)
    return 0


class Uploader:
    """Uploads one experiment's artifact files from a daemon thread.

    Args:
        store: where artifacts go.
        address: the experiment (shared with its writer: a run started offline gets its
            number there).
        spool: where uploads wait while the store is unreachable.
        client_id: names this uploader's spool records.
        on_weights_hash: called with (hash, iteration, epoch) once a checkpoint's hash is known
            (the writer links it, as ``log_weights`` does).
        folder: where the training thread keeps the copies it queues (removed when empty).
        retry_delays: waits between attempts before an upload is spooled.
    """

    def __init__(
        self,
        store: Store,
        address: RunAddress,
        *,
        spool: Spool,
        client_id: str,
        on_weights_hash: Callable[[str, int | None, int | None], None],
        folder: Path,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.folder = folder
        self.store = store
        self.address = address
        self.spool = spool
        self.client_id = client_id
        self.on_weights_hash = on_weights_hash
        self.retry_delays = tuple(retry_delays)
        self.uploaded = 0
        self.spooled = 0
        self.error: BaseException | None = None
        self._queue: collections.deque[PendingUpload] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self._offline = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._current: PendingUpload | None = None
        self._snapshot_slot = threading.BoundedSemaphore(1)  # one model copy in memory at most
        self._spare: dict[str, Any] | None = None  # the last snapshot, written: reused

    def add(self, item: PendingUpload) -> Future[str]:
        """Queue an upload (an append, no I/O); starts the thread on first use."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"mltrail-uploader-{self.client_id}", daemon=True
            )
            self._thread.start()
        self._idle.clear()
        self._queue.append(item)
        self._wake.set()
        return item.result

    def hold_snapshot(self) -> bool:
        """Reserve the one snapshot slot (False while the last snapshot is not written yet)."""
        return self._snapshot_slot.acquire(blocking=False)

    def take_spare(self) -> dict[str, Any] | None:
        """The last snapshot's tensors to copy the next one into (while holding the slot)."""
        spare, self._spare = self._spare, None
        return spare

    def release_snapshot(self) -> None:
        with contextlib.suppress(ValueError):  # released already (close raced the thread)
            self._snapshot_slot.release()

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued upload is stored or spooled."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Upload what is queued for up to ``timeout`` seconds, then spool the rest."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
        current = self._current
        if current is not None and self._thread is not None and self._thread.is_alive():
            self._to_spool(current, None)  # may land twice: a put of the same bytes is a no-op
        while self._queue:  # the thread is stuck or gone: keep the rest for `mltrail sync`
            self._to_spool(self._queue.popleft(), None)
        self._spare = None
        with contextlib.suppress(OSError):  # only when empty: spooled uploads keep their copies
            self.folder.rmdir()

    def _run(self) -> None:
        _lower_priority()
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._queue:
                if self._past_deadline():
                    return
                self._write_snapshots()
                self._current = self._queue.popleft()
                self._process(self._current)
                self._current = None
            self._idle.set()
            if self._stop.is_set():
                return

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _write_snapshots(self) -> None:
        """Write a queued snapshot before the next upload, so the slot is free again for the
        next ``log_checkpoint`` even while uploads fall behind (a failed write fails its
        upload: the file is gone)."""
        for queued in list(self._queue):
            if queued.snapshot is not None:
                with contextlib.suppress(Exception):
                    self._write_held(queued)

    def _write_held(self, item: PendingUpload) -> None:
        held = item.snapshot
        try:
            write_snapshot(item)
        finally:
            if held is not None:
                self._spare = held
                self.release_snapshot()

    def _process(self, item: PendingUpload) -> None:
        try:
            self._write_held(item)
            prepare(item)
        except Exception as exc:  # unreadable checkpoint, deleted file: say so, go on
            self._fail(item, exc)
            return
        if item.weights_hash is not None:
            self.on_weights_hash(item.weights_hash, item.iteration, item.epoch)
        item.result.set_result(item.weights_hash or item.sha256 or "")
        self._send(item)

    def _send(self, item: PendingUpload) -> None:
        fault: BaseException | None = None
        delays = (0.0,) if self._offline else (0.0, *self.retry_delays)
        for delay in delays:
            if delay and not self._sleep(delay):
                break
            try:
                ref = self.address.ref
                if ref is None:  # a run started offline, not numbered yet: wait in the spool
                    raise TransportError("the run has no number yet (started offline)")
                put(self.store, *ref, item)
            except Exception as exc:
                fault = exc
                if not is_transient(exc):
                    self._reject(item, exc)
                    return
                continue
            self._offline = False
            self.uploaded += 1
            return
        self._offline = True
        self._to_spool(item, fault)

    def _sleep(self, delay: float) -> bool:
        if self._deadline is not None and time.monotonic() + delay > self._deadline:
            return False
        time.sleep(delay)
        return True

    def _to_spool(self, item: PendingUpload, fault: BaseException | None) -> None:
        try:
            if item.snapshot is not None:  # still in memory at close: the spool needs the file
                write_snapshot(item)
                self.release_snapshot()
            self.spool.write(self.address, self.client_id, encode_upload(item))
        except OSError as exc:
            self._fail(item, exc)
            return
        self.spooled += 1
        if self.spooled == 1:
            why = f"unreachable ({fault})" if fault is not None else "still busy at the end"
            warnings.warn(
                f"mltrail: the store is {why}; artifact {item.name!r} and later ones wait in "
                f"{self.spool.directory} for `mltrail sync` or the next run",
                SpoolWarning,
                stacklevel=1,
            )

    def _reject(self, item: PendingUpload, exc: BaseException) -> None:
        self.error = self.error or exc
        warnings.warn(
            f"mltrail: the store refused artifact {item.name!r}: {exc}",
            RuntimeWarning,
            stacklevel=1,
        )

    def _fail(self, item: PendingUpload, exc: BaseException) -> None:
        self.error = self.error or exc
        if not item.result.done():
            item.result.set_exception(exc)
        warnings.warn(
            f"mltrail: could not upload artifact {item.name!r}: {exc}", RuntimeWarning, stacklevel=1
        )


def _lower_priority() -> None:
    """Run this thread's saving, hashing and sending only on a core the training leaves idle
    (Linux ``SCHED_IDLE`` on this thread alone: weight 3 against a training thread's 1024, and
    a training thread that wakes up takes the core at once); where that is refused, nice 10.
    Elsewhere the calls would change the whole process, so nothing is changed.

    A thread hashing beside a 2-thread torch loop in one process (4 s each, alternated, 5
    rounds): the loop kept 0.95 forward passes/s of its 0.91 alone with the hasher at
    ``SCHED_IDLE``, 0.68 at nice 10. It is only ever behind training of its own process: the
    process's share of the machine against other processes is the kernel's to divide.
    """
    if sys.platform != "linux":
        return
    me = threading.get_native_id()
    try:
        os.sched_setscheduler(me, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, me, UPLOAD_NICE)


# --- what the training thread calls ----------------------------------------------------------------
def queue_files(uploader: Uploader, path: str | Path, name: str | None, *, copy: bool) -> list[str]:
    """Queue a file, or every file under a folder, as artifacts; returns their paths.

    Raises:
        ValidationError: no such file or folder, or a name that is not a valid artifact path.
    """
    from mltrail.api.artifacts import files_of
    from mltrail.sdk.checkpoint_files import keep_copy

    local = Path(path).expanduser()
    base = artifact_upload(name if name is not None else local.name).path
    queued = []
    for file, target in list(files_of(local, base)):
        checked = artifact_upload(target).path
        kept = keep_copy(file, uploader.folder, checked) if copy else file
        uploader.add(PendingUpload(kept, checked, owned=copy))
        queued.append(str(checked))
    return queued


def queue_checkpoint(
    uploader: Uploader,
    model_or_path: Any,
    point: tuple[int | None, int | None],
    name: str | None,
) -> Future[str]:
    """Save or copy a checkpoint once and queue it; the future resolves to its weights hash.

    Raises:
        ValidationError: an unknown kind of model or checkpoint file, or a bad name.
    """
    from mltrail.core.artifacts import checkpoint_framework
    from mltrail.sdk.checkpoint_files import (
        checkpoint_name,
        keep_copy,
        kept_name,
        model_suffix,
        save_model,
    )

    iteration, epoch = point
    snapshot = None
    if isinstance(model_or_path, (str, Path)):
        file = Path(model_or_path).expanduser()
        if not file.is_file():
            raise ValidationError(f"no such file: {file}", "model")
        framework = checkpoint_framework(file.name)
        target = artifact_upload(name or f"checkpoints/{file.name}").path
        kept = keep_copy(file, uploader.folder, target)
    else:
        suffix = model_suffix(model_or_path)
        framework = checkpoint_framework(suffix)
        target = artifact_upload(name or checkpoint_name(suffix, iteration, epoch)).path
        kept = kept_name(uploader.folder, target)
        snapshot = _snapshot(uploader, model_or_path) if suffix == ".pt" else None
        if snapshot is None:
            save_model(model_or_path, kept)
    item = PendingUpload(kept, target, True, iteration, epoch, framework)
    item.snapshot = snapshot
    return uploader.add(item)


def _snapshot(uploader: Uploader, model: Any) -> dict[str, Any] | None:
    """A copy of the model's tensors for the uploader thread to write, when the slot is free
    (else None: the training thread saves the file itself, as when uploads fall behind)."""
    from mltrail.sdk.checkpoint_files import snapshot_state

    if not uploader.hold_snapshot():
        return None
    try:
        snapshot = snapshot_state(model, uploader.take_spare())
    except BaseException:
        uploader.release_snapshot()
        raise
    if snapshot is None:
        uploader.release_snapshot()
    return snapshot

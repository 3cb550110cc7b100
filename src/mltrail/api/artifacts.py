"""``api.artifacts``: list, download and upload an experiment's files.

Downloads stream to a temporary file beside the destination, are checked against the
artifact's sha256 while they are written, and are renamed into place only when they match, so
a destination is either the whole verified file or untouched; one from a plain-HTTP server is
written around the page cache (``O_DIRECT``, :mod:`~mltrail.store.blobs.uncached`). Uploads
stream the file once, hashing it on the way; the store checks the declared size and hashes what
it received, and the two digests must agree before it records anything (else the path keeps its
earlier version).
"""

from __future__ import annotations

import builtins
import hashlib
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from mltrail.api.render import with_iso_times
from mltrail.core import codec, validation
from mltrail.core.artifacts import (
    Artifact,
    GcReport,
    artifact_path,
    artifact_prefix,
    artifact_upload,
)
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.store.artifacts import ArtifactReader
from mltrail.store.base import Store
from mltrail.store.blobs.staging import copy_verified, write_verified
from mltrail.store.blobs.uncached import UncachedFile

HASH_BLOCK = 1024 * 1024


def file_sha256(path: str | Path) -> tuple[str, int]:
    """(sha256, size) of a local file, read once in blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def artifact_dict(a: Artifact) -> dict[str, Any]:
    """An artifact for people: its wire record with an ISO time."""
    return with_iso_times(codec.artifact_to_wire(a), ("created_at",))


def _path_below(path: str, folder: str) -> str:
    """``path``, listed by the store under ``folder``, relative to it: what a folder download
    writes below its destination. A server's listing is not trusted, and every path is
    checked before anything is written: ``folder/../x`` was refused only when its turn came,
    after the files listed before it were written, and ``other/x`` was written as ``x``
    (a name cut as if it began with ``folder/``).

    Raises:
        ValidationError: naming ``path``, before anything is written.
    """
    try:
        checked = artifact_path(path)
    except ValidationError:
        checked = None
    if checked is None or not checked.startswith(folder + "/"):
        raise ValidationError(
            f"the store listed {path!r} in the folder {folder!r}: not a path inside it, so "
            "nothing was downloaded",
            "path",
        )
    return checked[len(folder) + 1 :]


def save_verified(reader: ArtifactReader, dest: Path) -> Path:
    """Write a download to ``dest`` only if its bytes hash to the artifact's sha256.

    Raises:
        ValidationError: the bytes did not match (``dest`` is left as it was).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with reader:
            artifact = reader.artifact
            if reader.readinto is not None:
                with UncachedFile(partial) as uncached:  # the page cache's copy cost the most
                    copy_verified(reader.readinto, uncached.write, artifact.sha256, artifact.size)
            else:
                with partial.open("wb") as out:
                    write_verified(out.writelines, reader.chunks, artifact.sha256)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


class ReadAhead:
    """A file read and hashed by a thread a few blocks ahead of whoever sends it, so reading
    and hashing overlap the upload; ``digest`` is complete once :meth:`read` returned ``b""``
    (or, after :meth:`claim_file`, once :meth:`close` returned).

    Args:
        handle: the file, opened ``rb``, at its start.
        depth: blocks held ahead (of :data:`HASH_BLOCK` bytes each).
    """

    def __init__(self, handle: BinaryIO, depth: int = 8) -> None:
        self.digest = hashlib.sha256()
        self._handle = handle
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _start(self, target: Callable[[], None]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=target, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while block := self._handle.read(HASH_BLOCK):
                self.digest.update(block)
                if not self._put(block):
                    return
        except Exception as exc:
            self._put(exc)
            return
        self._put(b"")

    def _hash_only(self) -> None:
        """Hash the file with positional reads into one buffer (a sender owns its position)."""
        buffer = bytearray(HASH_BLOCK)
        view = memoryview(buffer)
        offset = 0
        try:
            while True:
                got = os.preadv(self._handle.fileno(), [buffer], offset)
                if not got:
                    return
                self.digest.update(view[:got])
                offset += got
        except Exception as exc:
            self._error = exc

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1, /) -> bytes:
        self._start(self._run)
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if not item:
            self._queue.put(b"")  # later reads see the end too
        return item

    def claim_file(self) -> BinaryIO:
        """The file for a store that sends it itself (``sendfile``): a thread hashes it
        meanwhile, and its digest is the sent bytes' only if the file did not change (else the
        store's digest differs and the upload is refused)."""
        self._start(self._hash_only)
        return self._handle

    def close(self) -> None:
        """Stop reading ahead; a claimed file's hashing is waited for (it ends with the file)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def hexdigest(self) -> str | None:
        """The file's sha256 once :meth:`close` returned; None when reading it failed."""
        return None if self._error is not None else self.digest.hexdigest()

    def sent_sha256(self) -> str | None:
        """The sha256 of what was read or sent (:class:`~mltrail.store.artifacts.DigestedSource`):
        the store compares it with what it received before it replaces anything."""
        self.close()
        return self.hexdigest()


def upload_file(
    store: Store,
    ref: tuple[int, int],
    file: Path,
    name: str,
    **point: Any,
) -> Artifact:
    """Upload one local file as artifact ``name``, read once.

    The store counts the bytes against the declared size (a cut-short upload is never
    recorded) and hashes them; the file's own sha256, computed while sending, must match
    before the store records anything (the source is a ``DigestedSource``), so a failed
    re-upload leaves the earlier version in place.

    Raises:
        ValidationError: the bytes received were not the file's (field ``sha256``) or fewer
            than it held (``size``).
    """
    upload = artifact_upload(
        name,
        size=file.stat().st_size,
        iteration=point.get("iteration"),
        epoch=point.get("epoch"),
        weights_hash_value=point.get("weights_hash"),
    )
    with file.open("rb") as handle:
        source = ReadAhead(handle)
        try:
            return store.put_artifact(ref[0], ref[1], upload, source)
        finally:
            source.close()


def files_of(path: Path, name: str) -> Iterator[tuple[Path, str]]:
    """(local file, artifact name) for a file, or for every file under a folder."""
    if path.is_file():
        yield path, name
        return
    if not path.is_dir():
        raise ValidationError(f"no such file or folder: {path}", "path")
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        yield file, f"{name}/{file.relative_to(path).as_posix()}"


class ArtifactsApi:
    """``api.artifacts``: an experiment's files."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list(
        self, project: int, experiment: int, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """The experiment's artifacts by path (those under the folder ``prefix`` when given)."""
        ref = validation.experiment_ref(project, experiment)
        found = self._store.list_artifacts(
            ref.project_id, ref.experiment_id, artifact_prefix(prefix)
        )
        return [artifact_dict(a) for a in found]

    def download(self, project: int, experiment: int, name: str, dest: str | Path) -> Path:
        """Download artifact ``name`` (or every artifact under the folder ``name``) to ``dest``.

        Args:
            project / experiment: the experiment.
            name: the artifact's path, or a folder of the tree.
            dest: a file to write; an existing folder receives the file under its own name
                (a folder download recreates the tree below ``dest``).

        Returns:
            The file written (the folder, for a folder download).

        Raises:
            NotFoundError: no artifact (nor folder) of that name.
            ValidationError: the bytes received did not match the stored sha256.
        """
        ref = validation.experiment_ref(project, experiment)
        target = Path(dest).expanduser()
        checked = artifact_path(name, "name")
        p, e = ref.project_id, ref.experiment_id
        try:
            reader = self._store.open_artifact(p, e, checked)
        except NotFoundError:
            return self._download_folder(p, e, checked, target)
        if target.is_dir():
            target = target / checked.rsplit("/", 1)[-1]
        return save_verified(reader, target)

    def _download_folder(self, project: int, experiment: int, name: str, dest: Path) -> Path:
        found = self._store.list_artifacts(project, experiment, name + "/")
        if not found:
            raise NotFoundError(
                f"no artifact or folder {name!r} in experiment {experiment} of project {project}",
                "name",
            )
        relatives = [_path_below(artifact.path, name) for artifact in found]  # all, first
        for artifact, relative in zip(found, relatives, strict=True):
            save_verified(
                self._store.open_artifact(project, experiment, artifact.path), dest / relative
            )
        return dest

    def upload(
        self,
        project: int,
        experiment: int,
        path: str | Path,
        name: str | None = None,
        *,
        iteration: int | None = None,
        epoch: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Upload a local file (or every file of a folder) to an experiment, after its run too.

        Args:
            project / experiment: the experiment.
            path: the local file or folder.
            name: its path in the tree; the file or folder's own name by default.
            iteration / epoch: the training point it belongs to.

        Returns:
            The artifacts stored.
        """
        ref = validation.experiment_ref(project, experiment)
        local = Path(path).expanduser()
        base = str(artifact_path(name if name is not None else local.name, "name"))
        point = {"iteration": iteration, "epoch": epoch}
        stored = [
            upload_file(self._store, (ref.project_id, ref.experiment_id), file, target, **point)
            for file, target in files_of(local, base)
        ]
        return [artifact_dict(a) for a in stored]

    def delete(self, project: int, experiment: int, name: str) -> None:
        """Remove an artifact from the tree (``collect_garbage`` frees its bytes)."""
        ref = validation.experiment_ref(project, experiment)
        self._store.delete_artifact(ref.project_id, ref.experiment_id, artifact_path(name, "name"))

    def collect_garbage(self, older_than_seconds: float = 3600.0) -> GcReport:
        """Delete blobs no artifact references, and upload leftovers older than the grace
        period (administrators)."""
        return self._store.collect_garbage(older_than_seconds)

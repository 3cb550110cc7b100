"""Blobs in a local folder: ``blobs/<ab>/<sha256>``, uploads staged in ``staging/``.

A blob is written to a staging file, verified, and only then renamed to its digest (an atomic
rename), so a reader never sees half a file and a killed server loses nothing it acknowledged
(the bytes are in the kernel's page cache, as committed SQLite WAL pages are). With ``fsync``
the file and its folder are also flushed to disk before the artifact is recorded, which survives
a power loss too but waits for the disk (``mltrail server --artifacts-fsync``). The rename
happens inside the database transaction that records the artifact (:meth:`LocalStaged.publish`);
a blob damaged on disk anyway is caught by the digest check of every download.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

from mltrail.store.artifacts import (
    CHUNK_BYTES,
    BlobInfo,
    BlobMissingError,
    BlobStore,
    Readable,
    StagedBlob,
    file_chunks,
)
from mltrail.store.blobs.staging import (
    HashingReader,
    copy_hashed,
    verified_sent,
    write_behind,
    write_pieces,
)

READ_BYTES = CHUNK_BYTES  # blocks that stay cached from the sha256 to the write (not 4 MiB)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStaged(StagedBlob):
    """A verified staging file, renamed to its digest by :meth:`publish`."""

    def __init__(self, blobs: LocalBlobs, staging: Path, sha256: str, size: int) -> None:
        self._blobs = blobs
        self._staging = staging
        self.sha256 = sha256
        self.size = size

    def publish(self) -> None:
        final = self._blobs.path_of(self.sha256)
        if final.exists():
            return  # the same bytes are stored already: deduplicated
        if not self._staging.exists():
            raise BlobMissingError(self.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._staging, final)
        if self._blobs.fsync:
            _fsync_dir(final.parent)

    def discard(self) -> None:
        self._staging.unlink(missing_ok=True)


def _write_hashed(
    source: Readable, write: Callable[[memoryview], object], max_bytes: int
) -> tuple[str, int]:
    """``write`` the source's bytes; their (sha256, count). A source that fills buffers (the
    server's socket, a file) is read into a few reused ones (:func:`copy_hashed`), any other
    block by block."""
    in_pieces = partial(write_pieces, write)  # a buffered file: see write_pieces
    readinto = getattr(source, "readinto", None)
    if callable(readinto):
        return copy_hashed(readinto, in_pieces, max_bytes)
    reader = HashingReader(source, max_bytes, READ_BYTES)
    write_behind(in_pieces, reader.blocks())
    return reader.digest(), reader.size


class LocalBlobs(BlobStore):
    """Blobs under ``root``.

    Args:
        root: the folder (made on first write).
        fsync: flush each blob to disk before it is recorded.
    """

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.url = str(self.root)

    def path_of(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    def stage(
        self,
        source: Readable,
        *,
        expected_sha256: str | None,
        max_bytes: int,
        expected_size: int | None = None,
    ) -> StagedBlob:
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        staging = self.staging_dir / f"{uuid.uuid4().hex}.part"
        try:
            with staging.open("wb") as out:
                digest, size = _write_hashed(source, out.write, max_bytes)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            verified_sent(source, digest, size, expected_sha256, expected_size)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        return LocalStaged(self, staging, digest, size)

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def open_file(self, sha256: str) -> BinaryIO:
        try:
            return self.path_of(sha256).open("rb")
        except FileNotFoundError:
            raise BlobMissingError(sha256) from None

    def read(self, sha256: str) -> tuple[Iterator[bytes], Callable[[], None]]:
        handle = self.open_file(sha256)
        return file_chunks(handle), handle.close

    def delete(self, sha256: str) -> None:
        self.path_of(sha256).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[BlobInfo]:
        top = self.root / "blobs"
        if not top.is_dir():
            return
        for folder in top.iterdir():
            for path in folder.iterdir() if folder.is_dir() else ():
                with contextlib.suppress(FileNotFoundError):
                    yield BlobInfo(path.name, path.stat().st_mtime)

    def clean_staging(self, older_than: float) -> int:
        if not self.staging_dir.is_dir():
            return 0
        removed = 0
        for path in self.staging_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
        return removed

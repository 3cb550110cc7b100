"""The local blob store stages a body read into buffers (the server's socket tap, through
``copy_hashed``): the staged blob holds exactly the bytes sent, verified, flushed with
``--artifacts-fsync``, and nothing is left behind when the body is refused."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from mltrail.core.errors import PayloadTooLargeError, ValidationError
from mltrail.store.artifacts import CHUNK_BYTES
from mltrail.store.blobs.local import LocalBlobs
from mltrail.store.blobs.uncached import ALIGN

DATA = os.urandom(3 * CHUNK_BYTES + ALIGN + 7)  # whole buffers, then an unaligned tail


class SocketLike:
    """A body that fills the caller's buffer a little at a time, as ``recv_into`` does."""

    def __init__(self, data: bytes, piece: int = 200_000) -> None:
        self._stream = io.BytesIO(data)
        self._piece = piece

    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("a source that fills buffers is read with readinto")

    def readinto(self, buffer: memoryview, /) -> int:
        return self._stream.readinto(buffer[: self._piece])


@pytest.mark.parametrize("fsync", [False, True])
def test_a_buffer_filling_body_is_staged_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    blobs = LocalBlobs(tmp_path, fsync=fsync)
    digest = hashlib.sha256(DATA).hexdigest()
    staged = blobs.stage(
        SocketLike(DATA), expected_sha256=digest, max_bytes=len(DATA), expected_size=len(DATA)
    )
    assert (staged.sha256, staged.size) == (digest, len(DATA))
    staged.publish()
    assert blobs.path_of(digest).read_bytes() == DATA
    assert not list(blobs.staging_dir.iterdir())
    assert len(synced) == (2 if fsync else 0)  # the file, then its folder at publish


def test_a_refused_body_leaves_no_staging_file(tmp_path: Path) -> None:
    blobs = LocalBlobs(tmp_path)
    with pytest.raises(PayloadTooLargeError):
        blobs.stage(SocketLike(DATA), expected_sha256=None, max_bytes=2 * CHUNK_BYTES)
    with pytest.raises(ValidationError) as refused:
        blobs.stage(SocketLike(DATA), expected_sha256="0" * 64, max_bytes=len(DATA))
    assert refused.value.field == "sha256"
    assert not list(blobs.staging_dir.iterdir())

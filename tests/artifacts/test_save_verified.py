"""A download is written beside its destination by a second thread and renamed into place only
when its bytes hash to the artifact's sha256; otherwise the destination stays as it was."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from mltrail.api.artifacts import save_verified
from mltrail.core.artifacts import Artifact
from mltrail.core.errors import PayloadTooLargeError, ValidationError
from mltrail.store.artifacts import CHUNK_BYTES, ArtifactReader
from mltrail.store.blobs.staging import (
    WRITE_PIECE,
    copy_hashed,
    copy_verified,
    gathered,
    write_pieces,
)

CHUNKS = [os.urandom(65536) for _ in range(40)] + [b"tail"]  # 2.5 MiB in 64 KiB chunks


def reader_of(chunks: list[bytes], sha256: str, closed: list[bool]) -> ArtifactReader:
    record = Artifact(1, 1, "data/x.bin", sha256, sum(map(len, chunks)), "a/b", 0.0)
    return ArtifactReader(record, iter(chunks), lambda: closed.append(True))


def test_matching_bytes_replace_the_destination_whole(tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"old")
    closed: list[bool] = []
    digest = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    assert save_verified(reader_of(CHUNKS, digest, closed), dest) == dest
    assert dest.read_bytes() == b"".join(CHUNKS) and closed == [True]
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # no partial file left


def test_other_bytes_raise_and_leave_the_destination_as_it_was(tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"old")
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ValidationError, match=wrong):
        save_verified(reader_of(CHUNKS, wrong, []), dest)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_gathered_lists_hold_about_the_size_asked_and_keep_the_order() -> None:
    lists = list(gathered(CHUNKS, 1024 * 1024))
    assert [sum(map(len, part)) for part in lists] == [1024 * 1024, 1024 * 1024, 8 * 65536 + 4]
    assert [chunk for part in lists for chunk in part] == CHUNKS


def file_reader(path: Path, sha256: str, size: int, closed: list[bool]) -> ArtifactReader:
    """A reader whose source fills the caller's buffers (what a direct download gives)."""
    handle = path.open("rb")
    record = Artifact(1, 1, "data/x.bin", sha256, size, "a/b", 0.0)

    def close() -> None:
        handle.close()
        closed.append(True)

    return ArtifactReader(record, iter(()), close, file=handle)


def test_a_buffer_filled_download_is_written_whole_through_reused_buffers(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)  # more blocks than buffers, and a short tail
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "x.bin"
    closed: list[bool] = []
    reader = file_reader(source, hashlib.sha256(data).hexdigest(), len(data), closed)
    assert reader.readinto is not None
    assert save_verified(reader, dest) == dest
    assert dest.read_bytes() == data and closed == [True]


@pytest.mark.parametrize(
    ("size_delta", "digest_of", "field"),
    [(0, b"other", "sha256"), (1, None, "size"), (-1, None, "size")],
    ids=["corrupted", "truncated", "longer"],
)
def test_a_corrupted_or_truncated_buffer_filled_download_raises_and_writes_nothing(
    tmp_path: Path, size_delta: int, digest_of: bytes | None, field: str
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"old")
    digest = hashlib.sha256(digest_of if digest_of is not None else data).hexdigest()
    reader = file_reader(source, digest, len(data) + size_delta, [])
    with pytest.raises(ValidationError) as raised:
        save_verified(reader, dest)
    assert raised.value.field == field
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin", "x.bin"]


def test_a_failing_write_is_raised_not_hung(tmp_path: Path) -> None:
    data = os.urandom(6 * 1024 * 1024)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    writes: list[int] = []

    def write(view: memoryview) -> None:
        writes.append(len(view))
        if len(writes) == 3:
            raise OSError(28, "No space left on device")

    with source.open("rb") as handle, pytest.raises(OSError, match="No space"):
        copy_verified(handle.readinto, write, hashlib.sha256(data).hexdigest(), len(data))
    assert 3 <= len(writes) < len(data) // WRITE_PIECE  # stopped soon after the failure


def test_write_pieces_hands_on_views_no_larger_than_a_piece() -> None:
    data = os.urandom(WRITE_PIECE * 2 + 5)
    pieces: list[bytes] = []
    write_pieces(lambda view: pieces.append(bytes(view)), data)
    assert [len(p) for p in pieces] == [WRITE_PIECE, WRITE_PIECE, 5]
    assert b"".join(pieces) == data


def test_copy_hashed_refuses_bytes_over_the_limit_before_writing_them() -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    written: list[bytes] = []
    with pytest.raises(PayloadTooLargeError):
        copy_hashed(io.BytesIO(data).readinto, lambda v: written.append(bytes(v)), CHUNK_BYTES)
    assert b"".join(written) == data[: len(b"".join(written))]
    assert len(b"".join(written)) <= CHUNK_BYTES
    digest, size = copy_hashed(io.BytesIO(data).readinto, lambda v: None, len(data))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))

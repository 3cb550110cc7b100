"""A download is written beside its destination by a second thread and renamed into place only
when its bytes hash to the artifact's sha256; otherwise the destination stays as it was."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mltrail.api.artifacts import save_verified
from mltrail.core.artifacts import Artifact
from mltrail.core.errors import ValidationError
from mltrail.store.artifacts import ArtifactReader
from mltrail.store.blobs.staging import gathered

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

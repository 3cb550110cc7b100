"""A download's file is written with O_DIRECT while the writes are whole aligned blocks, and
buffered after (its tail, an unaligned buffer, a file system refusing O_DIRECT): the bytes on
disk are the bytes written either way."""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

import pytest

from mltrail.store.blobs import uncached
from mltrail.store.blobs.uncached import ALIGN, UncachedFile

BLOCK = 256 * 1024


def aligned(data: bytes) -> memoryview:
    buffer = mmap.mmap(-1, len(data))
    buffer.write(data)
    return memoryview(buffer)


def test_whole_blocks_go_direct_and_the_tail_buffered(tmp_path: Path) -> None:
    blocks = [os.urandom(BLOCK) for _ in range(3)]
    tail = os.urandom(ALIGN + 7)
    path = tmp_path / "x.bin"
    with UncachedFile(path) as out:
        opened_direct = out.direct
        for block in blocks:
            out.write(aligned(block))
        stayed_direct = out.direct
        out.write(aligned(tail))
        assert not out.direct
    assert path.read_bytes() == b"".join(blocks) + tail
    if opened_direct:  # the file system took O_DIRECT: whole aligned blocks kept it
        assert stayed_direct


def test_an_unaligned_buffer_is_written_buffered(tmp_path: Path) -> None:
    data = os.urandom(2 * BLOCK)
    path = tmp_path / "x.bin"
    with UncachedFile(path) as out:
        out.write(memoryview(bytearray(b"?" + data))[1:])  # whole blocks, misaligned start
        assert not out.direct  # refused (EINVAL) and written again buffered
        out.write(data)
    assert path.read_bytes() == data + data


def test_a_file_system_refusing_o_direct_is_written_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing_direct(path: object, flags: int, mode: int = 0o777) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(uncached.os, "open", refusing_direct)
    data = os.urandom(BLOCK)
    path = tmp_path / "x.bin"
    with UncachedFile(path) as out:
        assert not out.direct
        out.write(aligned(data))
    assert path.read_bytes() == data


def test_other_open_errors_are_raised(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        UncachedFile(tmp_path / "no-such-folder" / "x.bin")

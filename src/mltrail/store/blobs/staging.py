"""Reading an upload's bytes once (hashed, counted against the limit, handed on in blocks), and
writing bytes from a second thread while the next ones arrive (uploads and downloads alike)."""

from __future__ import annotations

import hashlib
import mmap
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from mltrail.core.errors import PayloadTooLargeError, ValidationError
from mltrail.store.artifacts import CHUNK_BYTES, Readable, check_sent_digest

Block = TypeVar("Block")


class HashingReader:
    """Blocks of ``source`` with their sha256 and count kept up to date.

    Args:
        source: where the bytes come from.
        max_bytes: more than this raises PayloadTooLargeError as soon as it arrives.
        block: bytes per block handed on (reads are gathered up to it).
    """

    def __init__(self, source: Readable, max_bytes: int, block: int = CHUNK_BYTES) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.block = block
        self.size = 0
        self._hash = hashlib.sha256()

    def blocks(self) -> Iterator[bytes]:
        """The bytes in blocks of ``block`` (the last one shorter)."""
        pending: list[bytes] = []
        held = 0
        while True:
            data = self.source.read(self.block - held)
            if not data:
                break
            self._count(data)
            pending.append(data)
            held += len(data)
            if held >= self.block:
                yield pending[0] if len(pending) == 1 else b"".join(pending)
                pending, held = [], 0
        if pending:
            yield b"".join(pending)

    def _count(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise over_limit(self.max_bytes)
        self._hash.update(data)

    def digest(self) -> str:
        """The sha256 of everything read so far."""
        return self._hash.hexdigest()

    def verified_digest(self, expected: str | None, expected_size: int | None = None) -> str:
        """The digest of everything read, checked against what the upload declared.

        Raises:
            ValidationError: a different digest or size (field ``sha256`` / ``size``), or
                not the digest a :class:`~mltrail.store.artifacts.DigestedSource` sent.
        """
        return verified_sent(self.source, self.digest(), self.size, expected, expected_size)


def over_limit(max_bytes: int) -> PayloadTooLargeError:
    """The error for an upload over ``max_bytes``."""
    return PayloadTooLargeError(
        f"the file is over the limit of {max_bytes} bytes (per-file limit or the "
        "project's remaining quota)",
        "size",
    )


def verified(digest: str, size: int, expected: str | None, expected_size: int | None = None) -> str:
    """``digest`` once it and ``size`` match what the upload declared.

    Raises:
        ValidationError: a different digest or size (field ``sha256`` / ``size``).
    """
    if expected_size is not None and expected_size != size:
        raise ValidationError(
            f"declared {expected_size} bytes, received {size} (upload cut short?)", "size"
        )
    if expected is not None and expected != digest:
        raise ValidationError(
            f"the bytes received hash to {digest}, not the declared {expected}", "sha256"
        )
    return digest


def verified_sent(
    source: Readable, digest: str, size: int, expected: str | None, expected_size: int | None
) -> str:
    """:func:`verified`, and the digest a :class:`~mltrail.store.artifacts.DigestedSource`
    sent checked too (:func:`~mltrail.store.artifacts.check_sent_digest`): called before a
    blob is completed, so a failed check leaves no blob behind (S3 included)."""
    check_sent_digest(source, verified(digest, size, expected, expected_size))
    return digest


def write_behind(write: Callable[[Block], object], blocks: Iterable[Block]) -> None:
    """``write`` each block from a second thread while the next one is received and hashed.

    The write's copy into the page cache and the sha256 each keep a core busy (both release
    the GIL), so one after the other in one thread they made the server's upload thread (and a
    download's writer) the slowest stage; at most one block is written while the next is read.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="mltrail-blob-write") as pool:
        pending: Future[object] | None = None
        for block in blocks:
            if pending is not None:
                pending.result()
            pending = pool.submit(write, block)
        if pending is not None:
            pending.result()


def gathered(chunks: Iterable[bytes], size: int = CHUNK_BYTES) -> Iterator[list[bytes]]:
    """``chunks`` in lists of about ``size`` bytes (the last one shorter), not joined: a
    thread handed each list pays its handoff once per ``size`` bytes, not once per chunk."""
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield pending
            pending, held = [], 0
    if pending:
        yield pending


def write_verified(
    write: Callable[[list[bytes]], object], chunks: Iterable[bytes], expected: str
) -> None:
    """``write`` ``chunks`` in lists of about :data:`CHUNK_BYTES`, hashed and written by a
    second thread while this one receives the next (how a download is checked while it is
    written); ValidationError at the end if they do not hash to ``expected``.

    Receiving (HTTP parsing, the socket's copy) keeps one core busy, hashing and the
    page-cache write another: hashed on the receiving thread, a download's bytes waited on it.
    """
    digest = hashlib.sha256()

    def hash_and_write(part: list[bytes]) -> None:
        for chunk in part:
            digest.update(chunk)
        write(part)

    write_behind(hash_and_write, gathered(chunks))
    _check_digest(digest.hexdigest(), expected)


COPY_BUFFERS = 4
"""Buffers of :data:`CHUNK_BYTES` a :func:`copy_verified` holds (its memory, about 4 MiB)."""


WRITE_PIECE = 64 * 1024


def write_pieces(write: Callable[[memoryview], object], data: bytes | memoryview) -> None:
    """``write`` ``data`` in pieces of at most :data:`WRITE_PIECE` bytes (views, not copies).

    A 1 MiB write has the kernel allocate a large page-cache folio, which here came from
    memory the VM's host had not mapped yet: writing 1 GiB through a 1 MiB buffer cost a median
    1.9 s of CPU in 1 MiB writes and 1.1 s in 256 KiB or 64 KiB ones; a 2 GiB download ran at
    59-61% of the loopback copy with 64 KiB pieces, 52% with 256 KiB ones (2 runs each).
    """
    view = memoryview(data)
    for start in range(0, len(view), WRITE_PIECE):
        write(view[start : start + WRITE_PIECE])


def fill(readinto: Callable[[memoryview], int], buffer: bytearray | mmap.mmap) -> int:
    """Read into ``buffer`` until it is full or the source ends; the bytes read."""
    view = memoryview(buffer)
    held = 0
    while held < len(buffer):
        got = readinto(view[held:])
        if not got:
            break
        held += got
    return held


def copy_hashed(
    readinto: Callable[[memoryview], int],
    write: Callable[[memoryview], object],
    max_bytes: int | None = None,
) -> tuple[str, int]:
    """Copy a source to ``write`` through a few reusable buffers, hashed on the way; the
    bytes' (sha256, count). How an upload whose source fills a caller's buffer (the socket, a
    file) is staged, and a download checked as it is written.

    ``write`` gets each buffer whole (a view of :data:`CHUNK_BYTES`, the last one shorter), and
    the buffers start on a page boundary, so a file opened ``O_DIRECT``
    (:class:`~mltrail.store.blobs.uncached.UncachedFile`) takes them as they are; a buffered
    file's writer cuts them with :func:`write_pieces`.

    This thread reads each buffer and hashes it while it is still in this core's cache; one
    other thread writes it meanwhile (the page-cache copy releases the GIL), and no bytes
    object is made per block (a download read as 64 KiB bytes objects through httpx cost its
    client about 1 s of CPU per GiB before any hashing). Hashing on a third thread overlapped
    more but cost more: the buffer crossed cores twice and every 64 KiB write woke a thread
    (33,000 futex calls per 2 GiB); a 2 GiB download took 1.46-2.08 s of client CPU per GiB
    that way, 1.32-1.48 s hashed by the reader (7 runs each, alternated), and on this loaded
    2-core machine CPU time is what the transfer's rate follows.

    Raises:
        PayloadTooLargeError: more than ``max_bytes`` (as soon as they arrived, none written).
    """
    digest = hashlib.sha256()
    free = [mmap.mmap(-1, CHUNK_BYTES) for _ in range(COPY_BUFFERS)]  # page-aligned
    in_flight: deque[tuple[mmap.mmap, Future[object]]] = deque()
    size = 0
    with ThreadPoolExecutor(1, thread_name_prefix="mltrail-copy-write") as writer:
        try:
            while True:
                buffer = free.pop() if free else _settled(in_flight)
                got = fill(readinto, buffer)
                if not got:
                    break
                size += got
                if max_bytes is not None and size > max_bytes:
                    raise over_limit(max_bytes)
                view = memoryview(buffer)[:got]
                digest.update(view)
                in_flight.append((buffer, writer.submit(write, view)))
            while in_flight:
                _settled(in_flight)
        finally:
            for _, written in in_flight:  # after an error: wait, the buffers are in use
                written.exception()
    return digest.hexdigest(), size


def copy_verified(
    readinto: Callable[[memoryview], int],
    write: Callable[[memoryview], object],
    expected: str,
    expected_size: int,
) -> None:
    """:func:`copy_hashed`, checked after the last write.

    Raises:
        ValidationError: fewer or more than ``expected_size`` bytes (field ``size``), or bytes
            not hashing to ``expected`` (field ``sha256``).
    """
    digest, size = copy_hashed(readinto, write)
    if size != expected_size:
        raise ValidationError(
            f"downloaded {size} bytes, not the artifact's {expected_size} (cut short?)", "size"
        )
    _check_digest(digest, expected)


def _settled(in_flight: deque[tuple[mmap.mmap, Future[object]]]) -> mmap.mmap:
    """The oldest buffer in flight, once written (its error raised)."""
    buffer, written = in_flight.popleft()
    written.result()
    return buffer


def _check_digest(digest: str, expected: str) -> None:
    """ValidationError (field ``sha256``) when a download's bytes hash to another digest."""
    if digest != expected:
        raise ValidationError(f"downloaded bytes hash to {digest}, not {expected}", "sha256")

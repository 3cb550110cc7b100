"""Writing a new file around the page cache (``O_DIRECT``) where the file system allows it: how
a download reaches the disk.

A buffered write copies every byte into page-cache pages the kernel takes for the file. On the
VMs the benchmarks run on (a balloon device with free page reporting), those pages came from
memory the host had taken back, and the first touch of each cost a fault on the host: writing a
2 GiB download cost its client 0.8-1.9 s of CPU per GiB, more than receiving and hashing it
together (0.3 + 0.6 s), while ``O_DIRECT`` writes from the download's own few buffers cost
0.05-0.12 s (2 GiB through a local server, 3 rounds each, alternated). A download written this
way also does not push a training's data out of the page cache.

``O_DIRECT`` asks for whole blocks from an aligned buffer at an aligned offset: the buffers of
:func:`~.staging.copy_hashed` are page-aligned and every write but the last is a whole buffer. A write
that is not (the file's tail, a caller's ``bytes``), a file system that refuses ``O_DIRECT``
(``EINVAL``) and a platform without it go on buffered, in :data:`~.staging.WRITE_PIECE` pieces.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType

from mltrail.store.blobs.staging import write_pieces

ALIGN = 4096
"""The alignment ``O_DIRECT`` writes keep (a page; every common block size divides it)."""
_DIRECT = getattr(os, "O_DIRECT", 0)


class UncachedFile:
    """A new file (created or truncated) written with ``O_DIRECT`` while it can be.

    Args:
        path: the file.
    """

    def __init__(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        self.direct = bool(_DIRECT)
        try:
            self._fd = os.open(path, flags | _DIRECT, 0o666)
        except OSError as exc:
            if not self.direct or exc.errno != errno.EINVAL:
                raise
            self._fd = os.open(path, flags, 0o666)  # a file system without O_DIRECT
            self.direct = False

    def write(self, data: memoryview | bytes) -> None:
        """Write all of ``data`` at the file's end: one ``O_DIRECT`` write for whole blocks,
        buffered pieces otherwise (and for every write after)."""
        if self.direct and len(data) % ALIGN:
            self._go_buffered()
        if self.direct:
            self._write_all(memoryview(data))
        else:
            write_pieces(self._write_all, data)

    def _write_all(self, view: memoryview) -> None:
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except OSError as exc:
                if not self.direct or exc.errno != errno.EINVAL:
                    raise
                self._go_buffered()  # an unaligned buffer, or a file system refusing it late

    def _go_buffered(self) -> None:
        import fcntl  # POSIX only, as O_DIRECT is: a platform without it never comes here

        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_DIRECT)
        self.direct = False

    def close(self) -> None:
        """Close the file (once; later calls do nothing)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> UncachedFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

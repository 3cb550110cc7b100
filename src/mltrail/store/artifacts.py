"""The artifacts noun of the Store, and the one small interface the bytes go through.

:class:`ArtifactStore` is the Store's part: each method is one operation (one transaction in
SqlStore, one request in HttpStore). :class:`BlobStore` is where SqlStore keeps the bytes,
content-addressed by sha256: a local folder or S3-compatible object storage
(``store/blobs/``). Bytes stream both ways in chunks; nothing holds a whole file in memory.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from mltrail.core.artifacts import Artifact, ArtifactUpload, GcReport
from mltrail.core.errors import ValidationError

CHUNK_BYTES = 1024 * 1024
"""Bytes per read and per streamed chunk."""


class Readable(Protocol):
    """Where an upload's bytes come from: a file opened ``rb`` or a request body."""

    def read(self, size: int = -1, /) -> bytes: ...


@runtime_checkable
class SendableFile(Readable, Protocol):
    """An upload read from a whole local file, which a store may send itself (``sendfile``)
    instead of calling :meth:`read`."""

    def claim_file(self) -> BinaryIO:
        """The file, to send from offset 0 (its position is not used); the source still
        computes what it computes (its digest) from the file meanwhile. Not with :meth:`read`."""
        ...


@runtime_checkable
class DigestedSource(Readable, Protocol):
    """An upload that hashes the bytes it gives (a client's local file, a body ending with its
    sender's digest): the store compares that digest with the one of the bytes it received
    before it records anything, so bytes changed on the way never replace an artifact."""

    def sent_sha256(self) -> str | None:
        """The sha256 of every byte the source gave, asked once they were all read; None when
        it cannot tell (the upload is then refused)."""
        ...


def check_sent_digest(source: Readable, received: str) -> None:
    """Refuse bytes that are not those a :class:`DigestedSource` hashed while giving them (a
    file rewritten while it was sent, a body whose trailer does not match), before anything is
    published: a blob store calls it before it completes a staged blob.

    Raises:
        ValidationError: (field ``sha256``) the digests differ.
    """
    if not isinstance(source, DigestedSource):
        return
    sent = source.sent_sha256()
    if sent != received:
        raise ValidationError(
            f"the store received bytes hashing to {received}, not the sender's "
            f"{sent or '(unknown: the file could not be read while sent, or no valid trailer)'}"
            "; nothing was stored (an earlier version stays), upload it again",
            "sha256",
        )


class ArtifactReader:
    """An artifact being downloaded: its record and its bytes, chunk by chunk.

    Use it as a context manager (or call :meth:`close`) so the file or connection is released.
    The bytes are not verified here; :func:`mltrail.api.artifacts.save_verified` checks them
    against ``artifact.sha256`` while writing.

    Args:
        artifact: the record.
        chunks: the bytes, in order.
        close: releases what ``chunks`` reads from.
        url: a presigned URL the bytes can be fetched from instead, when the store gave one.
        file: the open local file ``chunks`` reads, when there is one: a server can hand it to
            the kernel (``sendfile``) instead of reading it.
        readinto: reads the next bytes into a buffer (0 at the end), where the source can fill
            a caller's buffer (no new bytes object per block); ``file.readinto`` by default.
    """

    def __init__(
        self,
        artifact: Artifact,
        chunks: Iterator[bytes],
        close: Callable[[], None],
        url: str | None = None,
        file: BinaryIO | None = None,
        readinto: Callable[[memoryview], int] | None = None,
    ) -> None:
        self.artifact = artifact
        self.chunks = chunks
        self.url = url
        self.file = file
        self.readinto = readinto or (file.readinto if file is not None else None)  # type: ignore[attr-defined]
        self._close = close

    def close(self) -> None:
        self._close()

    def __enter__(self) -> ArtifactReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """``handle``'s bytes from where it stands, in chunks of :data:`CHUNK_BYTES`."""
    while block := handle.read(CHUNK_BYTES):
        yield block


class ArtifactStore(abc.ABC):
    """Files of experiments: a tree of paths per experiment over content-addressed blobs."""

    @abc.abstractmethod
    def put_artifact(
        self, project_id: int, experiment_id: int, upload: ArtifactUpload | str, source: Readable
    ) -> Artifact:
        """Store ``source``'s bytes at ``upload.path`` of the experiment's tree.

        The bytes are streamed into the blob store and verified (``upload.sha256`` and
        ``upload.size`` when given, and the source's own digest when it is a
        :class:`DigestedSource`) before anything is recorded, so a failed upload leaves the
        path's earlier artifact in place; the artifact becomes visible only once they are all
        stored. Putting the same bytes at the same path again changes nothing; other bytes
        replace the path's artifact. A checkpoint's ``weights_hash`` is also linked to
        (experiment, iteration, epoch), as :meth:`link_weights_hash` does, in the same step.

        Raises:
            ValidationError: the bytes do not match the declared sha256 or size.
            PayloadTooLargeError: over the per-file limit or the project's quota.
        """

    @abc.abstractmethod
    def list_artifacts(
        self, project_id: int, experiment_id: int, prefix: str | None = None
    ) -> list[Artifact]:
        """The experiment's artifacts (those under ``prefix/`` when given), by path."""

    @abc.abstractmethod
    def open_artifact(self, project_id: int, experiment_id: int, path: str) -> ArtifactReader:
        """The artifact at ``path`` with its bytes to read.

        Raises:
            NotFoundError: no artifact at that path (field ``path``).
        """

    @abc.abstractmethod
    def delete_artifact(self, project_id: int, experiment_id: int, path: str) -> None:
        """Remove the path from the tree (its blob goes at the next :meth:`collect_garbage`
        when nothing else references it).

        Raises:
            NotFoundError: no artifact at that path.
        """

    @abc.abstractmethod
    def find_checkpoints(self, weights_hash: str) -> list[Artifact]:
        """Checkpoint artifacts holding these weights, in projects the user can see, newest
        first (empty when none)."""

    @abc.abstractmethod
    def collect_garbage(self, older_than_seconds: float = 3600.0) -> GcReport:
        """Delete blobs no artifact references, and leftovers of interrupted uploads older
        than ``older_than_seconds``. Administrators only.

        Raises:
            PermissionDeniedError: the user is not an administrator.
        """


# --- where SqlStore keeps the bytes --------------------------------------------------------------
class BlobMissingError(Exception):
    """A blob expected in the blob store is not there (a collection raced an upload)."""


@dataclass(frozen=True)
class BlobInfo:
    """A blob in the store: its digest and when it was last written (unix seconds)."""

    sha256: str
    modified: float


class StagedBlob(abc.ABC):
    """Bytes received and verified, not yet published under their digest.

    Attributes:
        sha256: the digest of the bytes received.
        size: how many bytes.
    """

    sha256: str
    size: int

    @abc.abstractmethod
    def publish(self) -> None:
        """Make the blob readable under its digest (idempotent). SqlStore calls it inside the
        transaction that records the artifact, so a collection cannot delete it in between.

        Raises:
            BlobMissingError: the blob cannot be made visible (the upload must be sent again).
        """

    @abc.abstractmethod
    def discard(self) -> None:
        """Remove what staging left (idempotent; after :meth:`publish` it keeps the blob)."""


class BlobStore(abc.ABC):
    """Content-addressed bytes outside the database. Implementations: ``store/blobs/``.

    Attributes:
        url: where the blobs live (a folder or ``s3://bucket/prefix``), for messages.
    """

    url: str

    def check_reachable(self) -> None:  # noqa: B027  (a folder needs no check: it is made)
        """Raise when the storage cannot be used at all (a missing bucket), so the server says
        so once at start instead of answering the first upload with a 500.

        Raises:
            ValidationError: (field ``artifacts``) the storage cannot be reached.
        """

    @abc.abstractmethod
    def stage(
        self,
        source: Readable,
        *,
        expected_sha256: str | None,
        max_bytes: int,
        expected_size: int | None = None,
    ) -> StagedBlob:
        """Stream ``source`` to staging, hashing as it goes; nothing is visible yet.

        Raises:
            ValidationError: the bytes' digest is not ``expected_sha256`` (field ``sha256``),
                or their count not ``expected_size`` (``size``), checked before a blob is kept.
            PayloadTooLargeError: more than ``max_bytes`` arrived (reading stops there).
        """

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""

    @abc.abstractmethod
    def read(self, sha256: str) -> tuple[Iterator[bytes], Callable[[], None]]:
        """The blob's bytes in chunks, and how to release them.

        Raises:
            BlobMissingError: no such blob.
        """

    def open_file(self, sha256: str) -> BinaryIO | None:
        """The blob as an open local file (which a server can ``sendfile``), or None (default)
        where blobs are not local files.

        Raises:
            BlobMissingError: no such blob.
        """
        return None

    @abc.abstractmethod
    def delete(self, sha256: str) -> None:
        """Delete the blob (no error when it is gone already)."""

    @abc.abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (for the collection of orphans)."""

    @abc.abstractmethod
    def clean_staging(self, older_than: float) -> int:
        """Delete staging leftovers last written before ``older_than`` (unix seconds); returns
        how many."""

    def presigned_url(self, sha256: str, filename: str, media_type: str) -> str | None:
        """A time-limited URL that serves the blob without this server, or None (default)."""
        return None

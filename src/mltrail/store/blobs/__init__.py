"""Artifact bytes outside the database: a local folder or S3-compatible object storage.

Both implement :class:`mltrail.store.artifacts.BlobStore`; :func:`open_blobs` picks one by URL.
boto3 (the ``s3`` extra) is imported only for ``s3://`` URLs.
"""

from __future__ import annotations

from pathlib import Path

from mltrail.core.errors import ValidationError
from mltrail.store.artifacts import BlobStore
from mltrail.store.blobs.local import LocalBlobs
from mltrail.store.blobs.staging import write_verified

__all__ = ["LocalBlobs", "open_blobs", "write_verified"]


def open_blobs(location: str | Path, *, presign: bool = False, fsync: bool = False) -> BlobStore:
    """The blob store at ``location``: ``s3://bucket/prefix``, or a folder (created on first use).

    Args:
        location: a folder path (``file://`` accepted) or an ``s3://`` URL; the S3 endpoint and
            credentials come from the usual AWS variables (``AWS_ENDPOINT_URL``,
            ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` ...).
        presign: hand out presigned URLs for downloads (S3 only), so large files bypass the
            server.
        fsync: flush each local blob to disk before recording it (local folders only; S3
            acknowledges stored objects itself).

    Raises:
        ValidationError: an unsupported URL scheme, or S3 without boto3 installed.
    """
    text = str(location)
    if text.startswith("s3://"):
        try:
            from mltrail.store.blobs.s3 import S3Blobs
        except ImportError:
            raise ValidationError(
                "S3 artifact storage needs boto3: pip install 'mltrail[s3]'", "artifacts"
            ) from None
        return S3Blobs.from_url(text, presign=presign)
    if "://" in text and not text.startswith("file://"):
        raise ValidationError(f"must be a folder or an s3:// URL, got {text!r}", "artifacts")
    return LocalBlobs(Path(text.removeprefix("file://")).expanduser(), fsync=fsync)

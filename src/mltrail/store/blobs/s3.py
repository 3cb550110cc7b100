"""Blobs in S3-compatible object storage (boto3): ``<prefix>blobs/<sha256>``.

Uploads stream as a multipart upload (parts of at least 8 MiB, one part in memory at a time),
which S3 keeps invisible until it is completed; the digest is verified before completing, so a
wrong or cut-short upload is aborted and never seen. When the caller declared the digest, the
parts go straight to the blob's key; otherwise to ``<prefix>staging/`` and are copied (server
side) to the digest's key. The endpoint, region and credentials come from the usual AWS
variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` ...), read by boto3 itself.
"""

from __future__ import annotations

import contextlib
import functools
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mltrail.core.errors import TransportError, ValidationError
from mltrail.store.artifacts import (
    CHUNK_BYTES,
    BlobInfo,
    BlobMissingError,
    BlobStore,
    Readable,
    StagedBlob,
)
from mltrail.store.blobs.staging import HashingReader

MIN_PART_BYTES = 8 * 1024 * 1024
MAX_PARTS = 9_000  # S3 allows 10,000
# up to 5 GiB, S3's limit for one CopyObject, a staged upload moves in one request; larger ones
# in parts of 1 GiB (boto3's default of 8 MiB made a 1 GiB move 128 part copies)
COPY_CONFIG = TransferConfig(multipart_threshold=5 * 1024**3, multipart_chunksize=1024**3)
PRESIGN_SECONDS = 3600

F = TypeVar("F", bound=Callable[..., Any])


def _storage_faults(method: F) -> F:
    """S3 refusing or failing a call (a bucket gone, wrong credentials, the endpoint down) is a
    TransportError naming the bucket (503: the client retries), not a 500 with botocore's
    traceback in the server log."""

    @functools.wraps(method)
    def wrapper(self: S3Blobs, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            endpoint = self.client.meta.endpoint_url
            raise TransportError(
                f"the S3 bucket {self.bucket!r} at {endpoint} failed: {exc}", "artifacts"
            ) from None

    return wrapper  # type: ignore[return-value]


class S3Staged(StagedBlob):
    """An uploaded blob; :meth:`publish` checks it is (still) under its digest."""

    def __init__(self, blobs: S3Blobs, sha256: str, size: int) -> None:
        self._blobs = blobs
        self.sha256 = sha256
        self.size = size

    def publish(self) -> None:
        if not self._blobs.exists(self.sha256):
            raise BlobMissingError(self.sha256)

    def discard(self) -> None:
        """Nothing is left to discard: failed uploads were aborted when they failed."""


class S3Blobs(BlobStore):
    """Blobs in ``bucket`` under ``prefix``.

    Args:
        client: a boto3 S3 client.
        bucket: the bucket (it must exist).
        prefix: key prefix, ``""`` or ending in ``/``.
        presign: answer downloads with presigned URLs.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, presign: bool = False):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.presign = presign
        self.url = f"s3://{bucket}/{prefix}"

    @classmethod
    def from_url(cls, url: str, *, presign: bool = False) -> S3Blobs:
        """``s3://bucket/prefix`` with a client configured from the AWS variables."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValidationError(f"must be s3://bucket/prefix, got {url!r}", "artifacts")
        prefix = prefix.strip("/")
        config = Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"})
        client = boto3.client("s3", config=config)
        return cls(client, bucket, f"{prefix}/" if prefix else "", presign=presign)

    def check_reachable(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
                # HeadBucket needs s3:ListBucket, which a policy granting only the prefix's
                # objects lacks though uploads work; bad credentials show at the first
                # upload instead (a 503 naming the bucket)
                return
            raise self._unusable(exc) from None
        except BotoCoreError as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: Exception) -> ValidationError:
        endpoint = self.client.meta.endpoint_url
        return ValidationError(
            f"cannot use the bucket {self.bucket!r} at {endpoint} (it must exist, and "
            f"AWS_ENDPOINT_URL and the AWS_* credentials reach it): {exc}",
            "artifacts",
        )

    def key_of(self, sha256: str) -> str:
        return f"{self.prefix}blobs/{sha256}"

    # --- writing -------------------------------------------------------------------------------
    @_storage_faults
    def stage(
        self,
        source: Readable,
        *,
        expected_sha256: str | None,
        max_bytes: int,
        expected_size: int | None = None,
    ) -> StagedBlob:
        part_bytes = max(MIN_PART_BYTES, math.ceil(max_bytes / MAX_PARTS))
        reader = HashingReader(source, max_bytes, part_bytes)
        if expected_sha256 is not None and self.exists(expected_sha256):
            for _ in reader.blocks():  # stored already: verify the bytes, keep none of them
                pass
            digest = reader.verified_digest(expected_sha256, expected_size)
            return S3Staged(self, digest, reader.size)
        key = (
            self.key_of(expected_sha256)
            if expected_sha256
            else f"{self.prefix}staging/{uuid.uuid4().hex}"
        )
        digest = self._upload(reader, key, expected_sha256, expected_size)
        if key != self.key_of(digest):
            self._move(key, digest)
        return S3Staged(self, digest, reader.size)

    def _upload(
        self, reader: HashingReader, key: str, expected: str | None, size: int | None
    ) -> str:
        """Upload the reader's blocks to ``key``; their digest, verified before the object is
        completed (a wrong upload stays invisible)."""
        blocks = reader.blocks()
        first = next(blocks, b"")
        second = next(blocks, None)
        if second is None:  # one part: verify, then a plain PUT
            digest = reader.verified_digest(expected, size)
            self.client.put_object(Bucket=self.bucket, Key=key, Body=first)
            return digest
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = [self._part(key, upload_id, 1, first), self._part(key, upload_id, 2, second)]
            del first, second
            for number, block in enumerate(blocks, start=3):
                parts.append(self._part(key, upload_id, number, block))
            digest = reader.verified_digest(expected, size)  # before completing
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return digest
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _move(self, staging_key: str, sha256: str) -> None:
        try:
            if not self.exists(sha256):
                source = {"Bucket": self.bucket, "Key": staging_key}
                self.client.copy(source, self.bucket, self.key_of(sha256), Config=COPY_CONFIG)
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=staging_key)

    # --- reading -------------------------------------------------------------------------------
    @_storage_faults
    def exists(self, sha256: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_of(sha256))
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    @_storage_faults
    def read(self, sha256: str) -> tuple[Iterator[bytes], Callable[[], None]]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key_of(sha256))
        except ClientError as exc:
            if _status(exc) == 404:
                raise BlobMissingError(sha256) from None
            raise
        body = answer["Body"]
        return body.iter_chunks(CHUNK_BYTES), body.close

    def presigned_url(self, sha256: str, filename: str, media_type: str) -> str | None:
        if not self.presign:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self.key_of(sha256),
            "ResponseContentDisposition": f'attachment; filename="{_ascii(filename)}"',
            "ResponseContentType": media_type,
        }
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
        )
        return url

    # --- collection ----------------------------------------------------------------------------
    @_storage_faults
    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key_of(sha256))

    def _objects(self, folder: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{folder}/"):
            yield from page.get("Contents", ())

    def list_blobs(self) -> Iterator[BlobInfo]:
        for item in self._objects("blobs"):
            name = item["Key"].rsplit("/", 1)[-1]
            yield BlobInfo(name, item["LastModified"].timestamp())

    @_storage_faults
    def clean_staging(self, older_than: float) -> int:
        removed = 0
        for item in self._objects("staging"):
            if item["LastModified"].timestamp() < older_than:
                self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                removed += 1
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        for upload in uploads.get("Uploads", ()):
            if upload["Initiated"].timestamp() < older_than:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                removed += 1
        return removed


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c != '"' else "_" for c in name)

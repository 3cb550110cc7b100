"""Artifacts: files an experiment produced, kept as content-addressed blobs (sha256).

The types of the noun and its parse constructors. An artifact is a *path* in its experiment's
tree (``checkpoints/epoch-0003.pt``) pointing at a blob named by the sha256 of its bytes; the
database keeps the tree, the blob store (``store/blobs/``) the bytes, so the same file logged by
two experiments is stored once. A checkpoint artifact carries the weights hash of the model in it.

Paths are checked once, here, at the entrance: relative, ``/``-separated, no ``.`` or ``..``
segment, no empty segment, no backslash, no control character (NUL included), at most
:data:`MAX_PATH_LEN` bytes (UTF-8) and :data:`MAX_SEGMENT_LEN` characters per segment. No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mltrail.core.errors import ValidationError
from mltrail.core.points import MAX_EPOCH
from mltrail.core.types import WeightsHash
from mltrail.core.validation import MAX_INT64, require_int, weights_hash

MAX_PATH_LEN = 1024
MAX_SEGMENT_LEN = 255
MAX_MEDIA_TYPE_LEN = 200
DEFAULT_MEDIA_TYPE = "application/octet-stream"
DEFAULT_MAX_FILE_BYTES = 64 * 1024**3
"""Per-file limit unless the server sets ``MLTRAIL_ARTIFACT_MAX_FILE_BYTES``: 64 GiB."""
DEFAULT_PROJECT_QUOTA_BYTES = 1024**4
"""Per-project quota unless the server sets ``MLTRAIL_ARTIFACT_QUOTA_BYTES``: 1 TiB (the sum of
its artifacts' sizes, each counted once per path however the blobs are shared)."""

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE_RE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
_BAD_PATH_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")

# extension -> media type; the UI previews text, JSON, CSV and images, the rest downloads
MEDIA_TYPES = {
    ".txt": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".yaml": "text/yaml",
    ".yml": "text/yaml",
    ".toml": "text/plain",
    ".cfg": "text/plain",
    ".ini": "text/plain",
    ".py": "text/x-python",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".html": "text/html",
    ".pt": "application/x-pytorch",
    ".pth": "application/x-pytorch",
    ".ckpt": "application/x-pytorch",
    ".bin": "application/octet-stream",
    ".safetensors": "application/x-safetensors",
    ".npz": "application/x-numpy",
    ".npy": "application/x-numpy",
    ".keras": "application/x-keras",
    ".h5": "application/x-hdf5",
    ".onnx": "application/x-onnx",
    ".parquet": "application/x-parquet",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
}

# checkpoint file suffix -> framework of checkpoints.weights_hash_from_file
CHECKPOINT_FRAMEWORKS = {
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".bin": "pytorch",
    ".safetensors": "pytorch",
    ".keras": "keras",
    ".h5": "keras",
    ".npz": "numpy",
    ".npy": "numpy",
}


class ArtifactPath(str):
    """A checked artifact path (:func:`artifact_path`)."""

    __slots__ = ()


class Sha256(str):
    """A checked sha256 digest: 64 lower-case hexadecimal digits (:func:`sha256`)."""

    __slots__ = ()


@dataclass(frozen=True)
class Artifact:
    """One file of an experiment's tree.

    Attributes:
        project_id / experiment_id: the experiment it belongs to.
        path: its place in the tree (``/``-separated, relative).
        sha256: the digest of its bytes, which names the blob holding them.
        size: bytes.
        media_type: e.g. ``text/csv``; ``application/octet-stream`` when unknown.
        created_at: unix seconds of the upload.
        iteration / epoch: the training point it belongs to, when it has one.
        weights_hash: for a checkpoint, the weights hash of the model in it.
    """

    project_id: int
    experiment_id: int
    path: str
    sha256: str
    size: int
    media_type: str
    created_at: float
    iteration: int | None = None
    epoch: int | None = None
    weights_hash: str | None = None


@dataclass(frozen=True)
class ArtifactUpload:
    """What an upload declares besides its bytes, checked (:func:`artifact_upload`).

    ``size`` and ``sha256`` are claims the store verifies against the bytes it receives.
    """

    path: ArtifactPath
    media_type: str
    size: int | None = None
    sha256: Sha256 | None = None
    iteration: int | None = None
    epoch: int | None = None
    weights_hash: WeightsHash | None = None


@dataclass(frozen=True)
class ArtifactLimits:
    """Per-file limit and per-project quota, in bytes."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    project_quota_bytes: int = DEFAULT_PROJECT_QUOTA_BYTES


@dataclass(frozen=True)
class GcReport:
    """What ``mltrail gc`` removed.

    Attributes:
        blobs: blobs no artifact referenced any more, deleted.
        bytes: their total size (as recorded; orphans not in the database count 0).
        staging: leftovers of interrupted uploads, deleted.
    """

    blobs: int = 0
    bytes: int = 0
    staging: int = 0


def artifact_path(value: Any, field: str = "path") -> ArtifactPath:
    """A relative ``/``-separated path with no traversal; returned unchanged.

    Raises:
        ValidationError: absolute, ``..``/``.``/empty segment, backslash, control character
            (NUL), drive letter, or too long.
    """
    if isinstance(value, ArtifactPath):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field)
    if not value:
        raise ValidationError("must not be empty", field)
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_LEN:
        raise ValidationError(f"must be at most {MAX_PATH_LEN} bytes in UTF-8", field)
    if _BAD_PATH_CHARS.search(value):
        raise ValidationError("must not contain control characters (NUL) or backslashes", field)
    if value.startswith("/") or _DRIVE_RE.match(value):
        raise ValidationError("must be a relative path, not an absolute one", field)
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValidationError(
                f"must not contain {segment or 'empty'!r} segments (a/b/c.txt form only)", field
            )
        if len(segment) > MAX_SEGMENT_LEN:
            raise ValidationError(f"segments must be at most {MAX_SEGMENT_LEN} characters", field)
    return ArtifactPath(value)


def artifact_prefix(value: Any) -> str | None:
    """A folder of the tree to list (``checkpoints`` or ``checkpoints/``), or None for all."""
    if value is None or value == "":
        return None
    text = value.rstrip("/") if isinstance(value, str) else value
    return str(artifact_path(text, "prefix")) + "/"


def sha256(value: Any, field: str = "sha256") -> Sha256:
    """A sha256 digest: 64 hex digits, returned lower-cased."""
    if isinstance(value, Sha256):
        return value
    if not isinstance(value, str) or not _SHA256_RE.match(value.strip().lower()):
        raise ValidationError("must be a 64-digit hexadecimal sha256", field)
    return Sha256(value.strip().lower())


SHA256_TRAILER = "trailer"
"""An upload's ``sha256`` parameter saying the body ends with the sender's digest: the 64 hex
digits of the sha256 of the bytes before them, computed while it sent them. The store compares
it with what it received before it records anything (a mismatch replaces nothing)."""
TRAILER_BYTES = 64


def sha256_trailer(digest: str | None) -> bytes:
    """The trailer a sender appends: its digest, or (it could not tell) 64 bytes that are not
    one, which the store refuses."""
    return (digest or "?" * TRAILER_BYTES).encode("ascii")


def read_sha256_trailer(data: bytes) -> str | None:
    """The digest a trailer carries (hex digits in either case, as ``sha256=`` takes them);
    None when it is not exactly one."""
    text = data.decode("ascii", "replace").lower()
    return text if _SHA256_RE.fullmatch(text) else None


def media_type(value: Any, path: str) -> str:
    """The media type given, or the one the path's extension says."""
    if value is None or value == "":
        return guess_media_type(path)
    if not isinstance(value, str) or len(value) > MAX_MEDIA_TYPE_LEN:
        raise ValidationError(
            f"must be a type/subtype string of at most {MAX_MEDIA_TYPE_LEN}", "media_type"
        )
    if not _MEDIA_TYPE_RE.match(value):
        raise ValidationError(f"must look like type/subtype, got {value!r}", "media_type")
    return value.lower()


def guess_media_type(path: str) -> str:
    """The media type of a file name's extension (``application/octet-stream`` when unknown)."""
    name = path.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    return MEDIA_TYPES.get(name[dot:], DEFAULT_MEDIA_TYPE) if dot > 0 else DEFAULT_MEDIA_TYPE


def checkpoint_framework(path: str) -> str:
    """The framework that reads a checkpoint file, by its suffix.

    Raises:
        ValidationError: a suffix no framework's weights hash can be read from (field ``model``).
    """
    name = path.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    framework = CHECKPOINT_FRAMEWORKS.get(name[dot:]) if dot >= 0 else None
    if framework is None:
        known = ", ".join(sorted(CHECKPOINT_FRAMEWORKS))
        raise ValidationError(f"a checkpoint file must end in one of {known}, got {name}", "model")
    return framework


def _optional_count(value: Any, field: str, maximum: int = MAX_INT64) -> int | None:
    if value is None or value == "":
        return None
    return require_int(value, field, minimum=0, maximum=maximum)


def artifact_upload(
    path: Any,
    *,
    media_type_value: Any = None,
    size: Any = None,
    sha256_value: Any = None,
    iteration: Any = None,
    epoch: Any = None,
    weights_hash_value: Any = None,
) -> ArtifactUpload:
    """Check everything an upload declares (the parse constructor of the noun)."""
    checked = artifact_path(path)
    return ArtifactUpload(
        path=checked,
        media_type=media_type(media_type_value, checked),
        size=_optional_count(size, "size"),
        sha256=None if sha256_value in (None, "") else sha256(sha256_value),
        iteration=_optional_count(iteration, "iteration"),
        epoch=_optional_count(epoch, "epoch", MAX_EPOCH),  # a 32-bit column
        weights_hash=None if weights_hash_value in (None, "") else weights_hash(weights_hash_value),
    )


def as_artifact_upload(value: ArtifactUpload | str) -> ArtifactUpload:
    """``value`` when already checked; a bare path is parsed into an upload of that path."""
    return value if isinstance(value, ArtifactUpload) else artifact_upload(value)

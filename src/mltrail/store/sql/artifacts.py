"""Artifacts: the tree of paths in the database, the bytes in a :class:`BlobStore`.

An upload streams into the blob store's staging first (hashed and verified there); then one
transaction checks access and quota, claims the blob's row, publishes the blob under its digest
and records the path. A collection deletes a blob only while holding that same row, after
checking that no artifact references it, so an upload and a collection never cross: either the
upload's artifact is committed first (and the blob is kept) or the collection finishes first (and
the upload publishes the blob again, or asks the client to send it again).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, exists, func, select

from mltrail.core import validation
from mltrail.core.artifacts import (
    Artifact,
    ArtifactLimits,
    ArtifactUpload,
    GcReport,
    artifact_path,
    artifact_prefix,
    as_artifact_upload,
)
from mltrail.core.errors import (
    MltrailError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    TransportError,
)
from mltrail.store.artifacts import (
    ArtifactReader,
    ArtifactStore,
    BlobMissingError,
    BlobStore,
    Readable,
    StagedBlob,
    file_chunks,
)
from mltrail.store.sql.access import Scope, SqlNoun, check_project, experiment_pk
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import artifact_blobs, artifacts, experiments, projects
from mltrail.store.sql.weights import link_weights_hash


class NoBlobStoreError(MltrailError):
    """This store was opened without artifact storage."""

    status_code = 409
    kind = "conflict"


def _columns() -> Any:
    return select(
        experiments.c.project_id,
        experiments.c.number,
        artifacts.c.path,
        artifacts.c.sha256,
        artifacts.c.size,
        artifacts.c.media_type,
        artifacts.c.created_at,
        artifacts.c.iteration,
        artifacts.c.epoch,
        artifacts.c.weights_hash,
    ).join(experiments, experiments.c.id == artifacts.c.experiment_id)


def _to_artifact(row: Any) -> Artifact:
    return Artifact(*row)


def _used_bytes(conn: Connection, project_id: int, pk: int, path: str) -> int:
    """Bytes of the project's artifacts, leaving out the one ``path`` would replace."""
    query = (
        select(func.coalesce(func.sum(artifacts.c.size), 0))
        .join(experiments, experiments.c.id == artifacts.c.experiment_id)
        .where(experiments.c.project_id == project_id)
        .where(~((artifacts.c.experiment_id == pk) & (artifacts.c.path == path)))
    )
    return int(conn.execute(query).scalar_one())


def room_for(
    conn: Connection, scope: Scope, limits: ArtifactLimits, ref: tuple[int, int], path: str
) -> tuple[int, int]:
    """(experiment row id, bytes one file may have): the per-file limit or what is left of
    the project's quota, whichever is smaller. Refused while the project is deleted."""
    pk = experiment_pk(conn, scope, *ref, write=True)
    left = limits.project_quota_bytes - _used_bytes(conn, int(ref[0]), pk, path)
    return pk, max(min(limits.max_file_bytes, left), 0)


def _check_room(size: int, room: int, limits: ArtifactLimits) -> None:
    if size <= room:
        return
    if size > limits.max_file_bytes:
        raise PayloadTooLargeError(
            f"{size} bytes is over the per-file limit of {limits.max_file_bytes}", "size"
        )
    raise PayloadTooLargeError(
        f"{size} bytes would take the project over its artifact quota of "
        f"{limits.project_quota_bytes} bytes ({room} left)",
        "quota",
    )


def claim_blob(conn: Connection, db: Database, staged: StagedBlob) -> None:
    """Hold the blob's row (created when new) and publish the blob, in the caller's transaction."""
    insert = db.insert(artifact_blobs).values(
        sha256=staged.sha256, size=staged.size, created_at=db.clock()
    )
    # DO UPDATE (a no-op) rather than DO NOTHING: it locks the row a collection may hold
    conn.execute(
        insert.on_conflict_do_update(index_elements=["sha256"], set_={"size": insert.excluded.size})
    )
    try:
        staged.publish()
    except BlobMissingError:
        raise TransportError(
            "the stored copy of this file was collected while it was uploaded; send it again",
            "sha256",
        ) from None


def record_artifact(
    conn: Connection,
    db: Database,
    scope: Scope,
    limits: ArtifactLimits,
    ref: tuple[int, int],
    upload: ArtifactUpload,
    staged: StagedBlob,
) -> Artifact:
    """The one transaction of an upload: access and quota, the blob, the path, the link."""
    pk, room = room_for(conn, scope, limits, ref, upload.path)
    _check_room(staged.size, room, limits)
    claim_blob(conn, db, staged)
    values = {
        "sha256": staged.sha256,
        "size": staged.size,
        "media_type": upload.media_type,
        "iteration": upload.iteration,
        "epoch": upload.epoch,
        "weights_hash": upload.weights_hash,
    }
    where = (artifacts.c.experiment_id == pk, artifacts.c.path == upload.path)
    current = conn.execute(_columns().where(*where)).first()
    if current is None:
        conn.execute(
            artifacts.insert().values(
                experiment_id=pk, path=upload.path, created_at=db.clock(), **values
            )
        )
    elif any(current._mapping[name] != value for name, value in values.items()):
        conn.execute(artifacts.update().where(*where).values(created_at=db.clock(), **values))
    if upload.weights_hash is not None:
        point = (upload.iteration, upload.epoch)
        link_weights_hash(conn, db, scope, ref, upload.weights_hash, point)
    return _to_artifact(conn.execute(_columns().where(*where)).one())


def read_artifact(conn: Connection, scope: Scope, ref: tuple[Any, Any], path: Any) -> Artifact:
    checked = artifact_path(path)
    pk = experiment_pk(conn, scope, *ref)
    row = conn.execute(
        _columns().where(artifacts.c.experiment_id == pk, artifacts.c.path == checked)
    ).first()
    if row is None:
        raise NotFoundError(
            f"no artifact {checked!r} in experiment {ref[1]} of project {ref[0]}", "path"
        )
    return _to_artifact(row)


def list_artifacts(
    conn: Connection, scope: Scope, ref: tuple[Any, Any], prefix: str | None
) -> list[Artifact]:
    pk = experiment_pk(conn, scope, *ref)
    query = _columns().where(artifacts.c.experiment_id == pk)
    folder = artifact_prefix(prefix)
    if folder is not None:
        query = query.where(artifacts.c.path.startswith(folder, autoescape=True))
    return [_to_artifact(r) for r in conn.execute(query.order_by(artifacts.c.path))]


def find_checkpoints(conn: Connection, scope: Scope, weights_hash: Any) -> list[Artifact]:
    digest = validation.as_weights_hash(weights_hash)
    query = (
        _columns()
        .join(projects, projects.c.id == experiments.c.project_id)
        .where(artifacts.c.weights_hash == digest, scope.visible_projects())
        .order_by(artifacts.c.created_at.desc(), artifacts.c.id.desc())
    )
    return [_to_artifact(r) for r in conn.execute(query)]


def _unreferenced(sha256: Any) -> Any:
    return ~exists().where(artifacts.c.sha256 == sha256)


def collect_blob(db: Database, blobs: BlobStore, digest: str) -> int | None:
    """Delete a blob no artifact references, while holding its row (so an upload of the same
    bytes waits); its size, or None when something references it again."""
    with db.write() as conn:
        row = conn.execute(
            select(artifact_blobs.c.size)
            .where(artifact_blobs.c.sha256 == digest, _unreferenced(digest))
            .with_for_update()
        ).first()
        if row is None:
            return None
        blobs.delete(digest)
        conn.execute(artifact_blobs.delete().where(artifact_blobs.c.sha256 == digest))
        return int(row[0])


class SqlArtifacts(SqlNoun, ArtifactStore):
    """The artifacts half of SqlStore: paths in the database, bytes in ``self._blobs``."""

    _blobs: BlobStore | None
    _limits: ArtifactLimits

    def _blob_store(self) -> BlobStore:
        if self._blobs is None:
            raise NoBlobStoreError("this store was opened without artifact storage", "artifacts")
        return self._blobs

    def put_artifact(
        self, project_id: int, experiment_id: int, upload: ArtifactUpload | str, source: Readable
    ) -> Artifact:
        checked = as_artifact_upload(upload)
        blobs = self._blob_store()
        ref = (project_id, experiment_id)
        with self._db.read() as conn:
            _, room = room_for(conn, self._scope, self._limits, ref, checked.path)
        if checked.size is not None:
            _check_room(checked.size, room, self._limits)
        staged = blobs.stage(
            source, expected_sha256=checked.sha256, max_bytes=room, expected_size=checked.size
        )
        try:
            with self._db.write() as conn:
                return record_artifact(
                    conn, self._db, self._scope, self._limits, ref, checked, staged
                )
        finally:
            staged.discard()

    def list_artifacts(
        self, project_id: int, experiment_id: int, prefix: str | None = None
    ) -> list[Artifact]:
        with self._db.read() as conn:
            return list_artifacts(conn, self._scope, (project_id, experiment_id), prefix)

    def open_artifact(self, project_id: int, experiment_id: int, path: str) -> ArtifactReader:
        blobs = self._blob_store()
        with self._db.read() as conn:
            artifact = read_artifact(conn, self._scope, (project_id, experiment_id), path)
        name = artifact.path.rsplit("/", 1)[-1]
        url = blobs.presigned_url(artifact.sha256, name, artifact.media_type)
        try:
            file = blobs.open_file(artifact.sha256)
            if file is not None:
                return ArtifactReader(artifact, file_chunks(file), file.close, url, file)
            chunks, close = blobs.read(artifact.sha256)
        except BlobMissingError:
            raise NotFoundError(
                f"the bytes of {artifact.path!r} are missing from {blobs.url}", "path"
            ) from None
        return ArtifactReader(artifact, chunks, close, url)

    def delete_artifact(self, project_id: int, experiment_id: int, path: str) -> None:
        with self._db.write() as conn:
            read_artifact(conn, self._scope, (project_id, experiment_id), path)
            pk = experiment_pk(conn, self._scope, project_id, experiment_id)
            conn.execute(
                artifacts.delete().where(artifacts.c.experiment_id == pk, artifacts.c.path == path)
            )

    def find_checkpoints(self, weights_hash: str) -> list[Artifact]:
        with self._db.read() as conn:
            return find_checkpoints(conn, self._scope, weights_hash)

    def artifact_bytes(self, project_id: int) -> int:
        """Bytes the project's artifacts take against its quota."""
        with self._db.read() as conn:
            pid = check_project(conn, self._scope, project_id)
            return _used_bytes(conn, pid, 0, "")

    def collect_garbage(self, older_than_seconds: float = 3600.0) -> GcReport:
        if not self._scope.sees_all:
            raise PermissionDeniedError("only administrators collect garbage", "user")
        blobs = self._blob_store()
        cutoff = time.time() - float(older_than_seconds)
        with self._db.read() as conn:
            rows = conn.execute(
                select(artifact_blobs.c.sha256).where(_unreferenced(artifact_blobs.c.sha256))
            ).all()
            known = set(conn.execute(select(artifact_blobs.c.sha256)).scalars())
        removed, size = 0, 0
        for (digest,) in rows:
            freed = self._collect_row(blobs, digest)
            if freed is not None:
                removed, size = removed + 1, size + freed
        for info in blobs.list_blobs():
            if info.sha256 not in known and info.modified < cutoff:
                removed += self._collect_orphan(blobs, info.sha256)
        return GcReport(removed, size, blobs.clean_staging(cutoff))

    def _collect_row(self, blobs: BlobStore, digest: str) -> int | None:
        return collect_blob(self._db, blobs, digest)

    def _collect_orphan(self, blobs: BlobStore, digest: str) -> int:
        """Delete a blob the database never recorded (an upload that died before its commit),
        claiming its row meanwhile so an upload of the same bytes waits."""
        with self._db.write() as conn:
            claim = self._db.insert(artifact_blobs).values(
                sha256=digest, size=0, created_at=self._now()
            )
            if conn.execute(claim.on_conflict_do_nothing()).rowcount != 1:
                return 0
            blobs.delete(digest)
            conn.execute(artifact_blobs.delete().where(artifact_blobs.c.sha256 == digest))
            return 1

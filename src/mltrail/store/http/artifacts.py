"""The artifacts half of HttpStore: uploads and downloads stream, never held whole in memory."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx

from mltrail.core import codec
from mltrail.core.artifacts import (
    SHA256_TRAILER,
    TRAILER_BYTES,
    Artifact,
    ArtifactUpload,
    GcReport,
    artifact_path,
    as_artifact_upload,
    sha256_trailer,
)
from mltrail.core.errors import TransportError
from mltrail.core.wire import parse_json
from mltrail.store.artifacts import (
    CHUNK_BYTES,
    ArtifactReader,
    ArtifactStore,
    DigestedSource,
    Readable,
)
from mltrail.store.http.deadline import Progress, bind_client, bounded, paced
from mltrail.store.http.direct import DirectConnection, read_answer
from mltrail.store.http.transport import HttpNoun, decode, send

ARTIFACT_HEADER = "X-Mltrail-Artifact"
"""The response header carrying a download's artifact record (base64url of its JSON)."""
UPLOAD_READ_TIMEOUT = 600.0  # the answer to an upload comes after the server stored it all


def artifact_from_header(value: str) -> Artifact:
    """The artifact record a download's ``X-Mltrail-Artifact`` header carries."""
    padded = value + "=" * (-len(value) % 4)
    return codec.artifact_from_wire(parse_json(base64.urlsafe_b64decode(padded)))


def _chunks(
    source: Readable, trailer: Callable[[], bytes] | None, pace: Progress
) -> Iterator[bytes]:
    while data := source.read(CHUNK_BYTES):
        yield data
    if trailer is not None:
        yield trailer()
    pace.rest()  # all sent: the answer comes once the server stored it (the read timeout's)


def _trailer_of(source: Readable, upload: ArtifactUpload) -> Callable[[], bytes] | None:
    """The sender's digest to append to the body (``sha256=trailer``), for a source that
    hashes itself and a body of known size, so the server checks it before it replaces."""
    if upload.sha256 is not None or upload.size is None:
        return None
    if not isinstance(source, DigestedSource):
        return None
    return lambda: sha256_trailer(source.sent_sha256())


class HttpArtifacts(HttpNoun, ArtifactStore):
    """The artifacts half of HttpStore: each :class:`ArtifactStore` method is one request."""

    def _artifact_path(self, project_id: int, experiment_id: int, path: str) -> str:
        checked = artifact_path(path)  # before the URL: a client would resolve ".." away
        base = self._experiment_path(project_id, experiment_id)
        return f"{base}/artifacts/{quote(checked, safe='/')}"

    def put_artifact(
        self, project_id: int, experiment_id: int, upload: ArtifactUpload | str, source: Readable
    ) -> Artifact:
        checked = as_artifact_upload(upload)
        trailer = _trailer_of(source, checked)
        params = {
            "sha256": checked.sha256 if trailer is None else SHA256_TRAILER,
            "media_type": checked.media_type,
            "iteration": checked.iteration,
            "epoch": checked.epoch,
            "weights_hash": checked.weights_hash,
        }
        headers = {"Content-Type": "application/octet-stream"}
        path = self._artifact_path(project_id, experiment_id, checked.path)
        direct = self._direct()
        if direct is not None and checked.size is not None:
            url = direct.url(path, params)
            answer = direct.put(url, headers, source, checked.size, UPLOAD_READ_TIMEOUT, trailer)
            return codec.artifact_from_wire(decode(answer))
        if checked.size is not None:
            extra = TRAILER_BYTES if trailer is not None else 0
            headers["Content-Length"] = str(checked.size + extra)
        client = self._http.client
        timeout = httpx.Timeout(self._http.read_timeout, read=UPLOAD_READ_TIMEOUT)
        pace = Progress(self._http.deadline)
        request = client.build_request(
            "PUT",
            path,
            content=_chunks(source, trailer, pace),
            params={k: v for k, v in params.items() if v is not None},
            headers=headers,
            timeout=timeout,
        )
        # a streamed body cannot be sent twice: only never-sent requests are retried
        response = send(client, request, self._http.policy, repeatable=False, deadline=pace)
        return codec.artifact_from_wire(decode(response))

    def list_artifacts(
        self, project_id: int, experiment_id: int, prefix: str | None = None
    ) -> list[Artifact]:
        found = self._get(
            self._experiment_path(project_id, experiment_id) + "/artifacts", prefix=prefix
        )
        return [codec.artifact_from_wire(a) for a in found]

    def _direct(self) -> DirectConnection | None:
        """Artifact bytes' own connection, for a plain-HTTP server reached directly."""
        lean = self._http.lean
        if lean is None:
            return None
        prefix = self._http.client.base_url.raw_path.decode("ascii").rstrip("/")
        http = self._http
        return DirectConnection(
            *lean, prefix, http.headers, http.read_timeout, http.policy, http.deadline
        )

    def open_artifact(self, project_id: int, experiment_id: int, path: str) -> ArtifactReader:
        direct = self._direct()
        if direct is not None:
            return self._open_direct(direct, self._artifact_path(project_id, experiment_id, path))
        client = self._http.client
        request = client.build_request("GET", self._artifact_path(project_id, experiment_id, path))
        bound = self._http.bound()
        response = send(
            client, request, self._http.policy, repeatable=True, stream=True, deadline=bound
        )
        if response.is_redirect and ARTIFACT_HEADER in response.headers:
            location = response.headers["location"]
            response.close()
            return self._open_presigned(response.headers[ARTIFACT_HEADER], location)
        if not response.is_success:
            response.read()
            response.close()
            decode(response)  # raises the error the server sent
        artifact = artifact_from_header(response.headers[ARTIFACT_HEADER])
        sender = f"the mltrail server at {self._http.url}"
        chunks = paced(response.iter_raw(), Progress(self._http.deadline), sender)
        return ArtifactReader(artifact, chunks, response.close)

    def _open_direct(self, direct: DirectConnection, path: str) -> ArtifactReader:
        """The download over a connection of its own, read into the caller's buffers."""
        conn, response = direct.get(direct.url(path))
        record = response.headers.get(ARTIFACT_HEADER)
        if 300 <= response.status < 400 and record and "location" in response.headers:
            conn.close()
            return self._open_presigned(record, response.headers["location"])
        if not 200 <= response.status < 300 or record is None:
            try:
                decode(read_answer(response))  # raises the error the server sent
            finally:
                conn.close()
            raise TransportError(f"the server answered HTTP {response.status} without a record")
        chunks, readinto = direct.body_readers(conn, response)
        return ArtifactReader(artifact_from_header(record), chunks, conn.close, readinto=readinto)

    def _open_presigned(self, record: str, url: str) -> ArtifactReader:
        """Follow a presigned URL with a client of its own: the token must not go along."""
        artifact = artifact_from_header(record)
        direct = bind_client(httpx.Client(timeout=self._http.read_timeout))
        bound = self._http.bound()
        try:
            with bounded(bound):
                response = direct.send(direct.build_request("GET", url), stream=True)
        except httpx.TransportError as exc:
            direct.close()
            why = bound.explain() if bound.expired else str(exc)
            raise TransportError(f"cannot fetch the artifact from its storage: {why}") from exc
        if not response.is_success:
            response.close()
            direct.close()
            raise TransportError(f"the artifact storage answered HTTP {response.status_code}")

        def close() -> None:
            response.close()
            direct.close()

        storage = f"the artifact storage at {response.url.scheme}://{response.url.host}"
        chunks = paced(response.iter_raw(), Progress(self._http.deadline), storage)
        return ArtifactReader(artifact, chunks, close, url)

    def delete_artifact(self, project_id: int, experiment_id: int, path: str) -> None:
        self._http.call("DELETE", self._artifact_path(project_id, experiment_id, path))

    def find_checkpoints(self, weights_hash: str) -> list[Artifact]:
        found = self._get(f"/weights/{quote(str(weights_hash), safe='')}/checkpoints")
        return [codec.artifact_from_wire(a) for a in found]

    def collect_garbage(self, older_than_seconds: float = 3600.0) -> GcReport:
        body = self._http.call("POST", "/gc", params={"older_than_seconds": older_than_seconds})
        return GcReport(body["blobs"], body["bytes"], body["staging"])

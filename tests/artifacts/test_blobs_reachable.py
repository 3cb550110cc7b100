"""A server whose artifact storage cannot be used says so at start, not with a 500 at the first
upload (a real moto S3 server)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from mltrail.core.errors import TransportError, ValidationError
from mltrail.store.blobs import open_blobs


def test_a_missing_bucket_is_a_validation_error_naming_it(s3_location: str) -> None:
    open_blobs(s3_location).check_reachable()  # the test bucket exists: no error
    with pytest.raises(ValidationError) as info:
        open_blobs("s3://no-such-bucket-anywhere/runs").check_reachable()
    assert info.value.field == "artifacts"
    assert "'no-such-bucket-anywhere'" in str(info.value)


def test_mltrail_server_with_a_missing_bucket_exits_with_one_line(
    s3_location: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "server", "--port", "0", "--artifacts",
         "s3://no-such-bucket-anywhere/runs"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("Error: artifacts: cannot use the bucket 'no-such-bucket-any")
    assert len(done.stderr.splitlines()) == 1


def test_an_upload_to_a_bucket_gone_is_a_503_naming_it_not_a_500(s3_location: str) -> None:
    # the server answered 500 "internal server error" (botocore's NoSuchBucket in its log)
    blobs = open_blobs("s3://no-such-bucket-anywhere/runs")
    with pytest.raises(TransportError) as info:
        blobs.stage(io.BytesIO(b"id,label\n"), expected_sha256=None, max_bytes=1024)
    assert info.value.status_code == 503 and info.value.field == "artifacts"
    assert "'no-such-bucket-anywhere'" in str(info.value)


def test_a_bucket_the_credentials_may_not_list_does_not_stop_the_server() -> None:
    """HeadBucket needs s3:ListBucket: a policy granting objects under the prefix only (usual in
    a shared bucket) answers it 403 though every upload and download works, so that is no
    reason to refuse to start; a missing bucket (404) still is. (botocore's Stubber: moto
    grants every call.)"""
    from botocore.stub import Stubber

    from mltrail.store.blobs.s3 import S3Blobs

    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", "403", http_status_code=403)
        S3Blobs(client, "shared", "team/").check_reachable()
        stub.add_client_error("head_bucket", "404", http_status_code=404)
        with pytest.raises(ValidationError) as info:
            S3Blobs(client, "gone", "team/").check_reachable()
    assert info.value.field == "artifacts"

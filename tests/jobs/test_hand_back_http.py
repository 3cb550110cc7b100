"""A hand-back over HTTP is sent once: when its answer is lost, HttpStore raises instead of
sending it again (a second hand-back of the same claim answers False, which would say the job
was not handed back although it was)."""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.core.errors import TransportError
from mltrail.core.types import Status
from mltrail.server import create_app
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from support.inprocess import AppTransport


class _HandBackAnswerLost(AppTransport):
    """The app answers every request; the first hand-back's answer is lost on the way back."""

    hand_backs = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        if request.url.path.endswith("/hand-back"):
            self.hand_backs += 1
            if self.hand_backs == 1:
                raise httpx.ReadError("connection reset before the answer", request=request)
        return answer


def test_a_hand_back_whose_answer_is_lost_is_not_sent_again(sql_store: SqlStore) -> None:
    sql_store.auth.create_user("hands")
    token = sql_store.auth.create_token("hands")
    app = create_app(Settings(), sql_store, allowed_hosts=["localhost"])
    with TestClient(app, base_url="http://localhost") as client:
        transport = _HandBackAnswerLost(client)
        with HttpStore(
            "http://localhost", token, transport=transport, retries=2, backoff=0
        ) as store:
            job = store.submit_job(store.create_project("jobs").id, ["echo"])
            store.register_agent("hands-agent", name="host", queues=("default",), lease_seconds=5)
            claimed = store.claim_job("hands-agent", ["default"], lease_seconds=30)
            assert claimed is not None and claimed.lease_expires_at is not None
            with pytest.raises(TransportError):
                store.hand_back_job(
                    job.job_id,
                    "hands-agent",
                    attempt=claimed.attempts,
                    lease_expires_at=claimed.lease_expires_at,
                )
            assert transport.hand_backs == 1  # not retried into a misleading False
            assert store.get_job(job.job_id).status is Status.QUEUED  # the one call did it

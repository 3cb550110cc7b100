"""The server's identity over REST (``GET /api/v1/identity``)."""

from __future__ import annotations

from mltrail.store.http.transport import HttpNoun
from mltrail.store.identity import IdentityStore


class HttpIdentity(HttpNoun, IdentityStore):
    def store_identity(self) -> str:
        return str(self._get("/identity")["store_id"])

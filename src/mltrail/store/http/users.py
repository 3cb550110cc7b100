"""The users half of HttpStore: ``/api/v1/me``."""

from __future__ import annotations

from mltrail.core import codec
from mltrail.core.types import User
from mltrail.store.http.transport import HttpNoun
from mltrail.store.users import UserStore


class HttpUsers(HttpNoun, UserStore):
    """The users half of HttpStore: each :class:`UserStore` method is one request."""

    def me(self) -> User:
        return codec.user_from_wire(self._get("/me"))

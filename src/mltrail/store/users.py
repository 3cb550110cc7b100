"""The users noun of the Store: who the store acts for.

Creating users and tokens is an administrator's job on the server's database
(``SqlStore.auth``, ``mltrail token create``), not a Store call. So is looking tokens up
(``authenticate``, and ``find_token`` / ``get_token`` for the MissingLink surface's id_tokens):
only the server does it, on the SqlStore it serves; a token's stored digest is the key its
id_tokens are signed with and never leaves the server, so HttpStore has no such method.
"""

from __future__ import annotations

import abc

from mltrail.core.types import User


class UserStore(abc.ABC):
    """The store's user."""

    @abc.abstractmethod
    def me(self) -> User:
        """The user this store acts for (the local user in embedded mode)."""

"""The users noun of the Store: who the store acts for.

Creating users and tokens is an administrator's job on the server's database
(``SqlStore.auth``, ``mltrail token create``), not a Store call.
"""

from __future__ import annotations

import abc

from mltrail.core.types import User


class UserStore(abc.ABC):
    """The store's user."""

    @abc.abstractmethod
    def me(self) -> User:
        """The user this store acts for (the local user in embedded mode)."""

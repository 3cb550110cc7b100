"""The identity noun of the Store: which database this is, whatever URL reaches it.

SDK spools are keyed by it (not by a URL string), so a server reached as ``localhost`` or
``127.0.0.1``, or moved to another port, is still recognised as the store a batch belongs to.
Several servers over one PostgreSQL database report the same identity.
"""

from __future__ import annotations

import abc


class IdentityStore(abc.ABC):
    """The store's own identity."""

    @abc.abstractmethod
    def store_identity(self) -> str:
        """The store's id: 32 hex digits made when its database was created."""

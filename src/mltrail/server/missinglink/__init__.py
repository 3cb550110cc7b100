"""The original MissingLink client's REST surface, under ``/_ah/api/missinglink/v1``.

A thin translation of the ``missinglink`` 19.10 CLI/SDK's calls onto the same parse
constructors and the same one Store call per operation as ``/api/v1``, with mltrail's tokens and
project membership.
``docs/missinglink.md`` lists every call the client makes, what is served and what is not.
"""

from __future__ import annotations

PREFIX = "/_ah/api/missinglink/v1"

# The routes themselves are in ``routers.py``: the app mounts them on the first request under
# PREFIX (``server/app.py``), so a server the original client never calls does not import them.

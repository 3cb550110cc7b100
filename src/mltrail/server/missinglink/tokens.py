"""id_tokens: short-lived signed JWTs the MissingLink client sends as ``Authorization: Bearer``.

``users/refresh_token`` exchanges an mltrail API token (the config's ``refresh_token``) for one.
A JWT is signed (HS256) with a key derived from the stored sha256 of the API token it was minted
from and names that token's row in its ``kid`` header, so:

- every server sharing the database verifies it (nothing is kept in one process or file),
- revoking the API token revokes every id_token minted from it at once,
- no table is added. Anyone who can read the database could mint id_tokens, as they could
  already read or change every experiment in it.

The token records come from ``SqlStore.auth`` (``find_token``, ``get_token``), beside the
``authenticate`` that ``/api/v1`` uses: server-internal, not Store methods, since the stored
digest is the signing key and must never be served (see ``store/users.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mltrail.core.errors import AuthenticationError
from mltrail.core.types import LOCAL_USER, IssuedToken, User
from mltrail.server.deps import user_store
from mltrail.store.base import Store

ID_TOKEN_SECONDS = 3600
ISSUER = "mltrail"
API_AUDIENCE = "missinglink"
LOGS_AUDIENCE = "missinglink-logs"
_KEY_INFO = b"mltrail missinglink id_token v1"
_MAX_KID_DIGITS = 18  # a row id fits 64 bits

_bearer = HTTPBearer(auto_error=False, description="An id_token from users/refresh_token")


def signing_key(token: IssuedToken) -> bytes:
    """The HMAC key of JWTs minted from ``token``: derived from its stored sha256."""
    return hmac.new(bytes.fromhex(token.sha256), _KEY_INFO, hashlib.sha256).digest()


def mint(
    token: IssuedToken,
    *,
    audience: str = API_AUDIENCE,
    claims: Mapping[str, Any] | None = None,
    now: float | None = None,
    seconds: int = ID_TOKEN_SECONDS,
) -> str:
    """A JWT for the token's user, valid ``seconds`` from ``now``.

    Args:
        token: the API token it is minted from (its record, never the token itself).
        audience: ``missinglink`` for API calls, ``missinglink-logs`` for a log stream URL.
        claims: extra claims (a log stream's project and experiment).
        now: the issue time (tests mint expired tokens); the clock when None.
        seconds: lifetime.

    Returns:
        The encoded JWT; ``uid`` and ``name`` are what the client's ``ml auth whoami`` shows.
    """
    issued = int(time.time() if now is None else now)
    user = token.user
    payload = {
        "iss": ISSUER,
        "aud": audience,
        "sub": str(user.id),
        "uid": str(user.id),
        "name": user.name,
        "iat": issued,
        "exp": issued + seconds,
        **(claims or {}),
    }
    import jwt  # here, not at the top: PyJWT pulls in cryptography (10 MB resident), which a
    # server nobody logs to with the MissingLink client never needs

    return jwt.encode(
        payload, signing_key(token), algorithm="HS256", headers={"kid": str(token.id)}
    )


TokenLookup = Callable[[int], IssuedToken]
"""The stored API token of a row id: ``SqlStore.auth.get_token`` of the served store."""


def verify(
    get_token: TokenLookup, encoded: str | None, *, audience: str = API_AUDIENCE
) -> dict[str, Any]:
    """The claims of a valid, unexpired JWT minted by :func:`mint` for ``audience``.

    Args:
        get_token: looks up the API token the JWT names (its ``kid``).
        encoded: the JWT.
        audience: the audience it must have been minted for.

    Raises:
        AuthenticationError: missing, malformed, expired, forged, or its API token revoked.
    """
    if not encoded:
        raise AuthenticationError("an id_token is required: run users/refresh_token", "token")
    import jwt  # see mint

    try:
        kid = jwt.get_unverified_header(encoded).get("kid")
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"malformed id_token: {exc}", "token") from None
    if not (isinstance(kid, str) and kid.isdigit() and len(kid) <= _MAX_KID_DIGITS):
        raise AuthenticationError("malformed id_token: no key id", "token")
    record = get_token(int(kid))
    try:
        claims: dict[str, Any] = jwt.decode(
            encoded,
            signing_key(record),
            algorithms=["HS256"],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"invalid id_token: {exc}", "token") from None
    if claims["sub"] != str(record.user.id):
        raise AuthenticationError("invalid id_token: not its token's user", "token")
    claims["user"], claims["token"] = record.user, record
    return claims


def token_lookup(request: Request) -> TokenLookup:
    """Token records of the served store's database: server-internal, as ``/api/v1``'s
    ``authenticate`` is (see ``store/users.py``)."""
    lookup: TokenLookup = request.app.state.store.auth.get_token
    return lookup


def missinglink_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user of the request's id_token (the embedded UI's single user without auth)."""
    if not request.app.state.require_auth:
        return LOCAL_USER
    claims = verify(token_lookup(request), credentials.credentials if credentials else None)
    request.state.user = claims["user"].name  # named in the access log
    request.state.missinglink_token = claims["token"]  # live log URLs are minted from it
    user: User = claims["user"]
    return user


def missinglink_store(request: Request, user: Annotated[User, Depends(missinglink_user)]) -> Store:
    """The store as the id_token's user sees it: project membership applies as on ``/api/v1``."""
    return user_store(request, user)


MissingLinkStore = Annotated[Store, Depends(missinglink_store)]

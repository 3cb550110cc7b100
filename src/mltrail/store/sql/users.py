"""Users and API tokens. Tokens are stored as their sha256 only and compared in constant time.

A job's own token (``mltj_``, minted by a claim: ``store/sql/jobs.py``) authenticates through
:meth:`Auth.authenticate_request` only, as a :class:`~mltrail.core.types.Principal` carrying the
job's grant; :meth:`Auth.authenticate` and :meth:`Auth.find_token` know API tokens alone, so a
surface that does not pass the grant on never accepts a job's token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import namedtuple
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select

from mltrail.core import validation
from mltrail.core.errors import AuthenticationError, NotFoundError, ValidationError
from mltrail.core.types import LOCAL_USER, IssuedToken, JobGrant, Principal, Status, User
from mltrail.store.sql.access import SqlNoun
from mltrail.store.sql.engine import Database, DriverStatement
from mltrail.store.sql.tables import api_tokens, experiments, job_tokens, jobs, users
from mltrail.store.users import UserStore

TOKEN_PREFIX = "mlt_"
JOB_TOKEN_PREFIX = "mltj_"
ADMIN_NAME = "admin"


def token_digest(token: str) -> str:
    """The sha256 hex digest stored in place of the token. A lone surrogate (JSON's
    ``"\\ud800"``, in a MissingLink ``refresh_token``) is hashed as it is: no token holds one,
    so it is unknown (a 401), not a UnicodeEncodeError (a 500)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _to_user(row: Any) -> User:
    return User(id=row.id, name=row.name, is_admin=bool(row.is_admin))


class Auth:
    """User and token management over the store's database.

    Args:
        db: the database the store uses.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_user(self, name: str, is_admin: bool = False) -> User:
        """Create a user. ValidationError (field ``name``) when the name is taken."""
        name = validation.require_text(name, "name", min_len=1, max_len=140).strip()
        if not name:
            raise ValidationError("must not be blank", "name")
        with self._db.write() as conn:
            if conn.execute(select(users.c.id).where(users.c.name == name)).first():
                raise ValidationError(f"user {name!r} already exists", "name")
            uid = conn.execute(
                users.insert()
                .values(name=name, is_admin=is_admin, created_at=self._db.clock())
                .returning(users.c.id)
            ).scalar_one()
        return User(int(uid), name, bool(is_admin))

    def get_user(self, name: str) -> User:
        """NotFoundError (field ``user_name``) for an unknown user."""
        with self._db.read() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"user {name!r} does not exist", "user_name")
        return _to_user(row)

    def list_users(self) -> list[User]:
        with self._db.read() as conn:
            return [_to_user(r) for r in conn.execute(select(users).order_by(users.c.id))]

    def create_token(self, user_name: str, label: str = "") -> str:
        """A new token for the user: ``mlt_`` + 43 url-safe characters, shown only now."""
        user = self.get_user(user_name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._db.write() as conn:
            conn.execute(
                api_tokens.insert().values(
                    user_id=user.id,
                    token_sha256=token_digest(token),
                    label=str(label)[:200],
                    created_at=self._db.clock(),
                )
            )
        return token

    def authenticate(self, token: str | None) -> User:
        """The user owning ``token``. AuthenticationError when missing, unknown or revoked."""
        return self.find_token(token).user

    def authenticate_request(self, token: str | None) -> Principal:
        """Who a request's token acts for: an API token's user, or a job token's grant.

        A job's token acts for the user who queued the job, never as an administrator, and
        only while the attempt it was minted for runs under a live lease.

        Raises:
            AuthenticationError: missing, unknown, revoked or (a job's) expired.
        """
        if token and token.startswith(JOB_TOKEN_PREFIX):
            return self._job_principal(token)
        return Principal(self.authenticate(token))

    def _job_principal(self, token: str) -> Principal:
        digest = token_digest(token)
        with self._db.read() as conn:
            row = conn.execute(
                select(
                    job_tokens.c.token_sha256,
                    jobs.c.id.label("job_id"),
                    jobs.c.project_id,
                    experiments.c.number,
                    users.c.id.label("user_id"),
                    users.c.name,
                )
                .join(jobs, jobs.c.id == job_tokens.c.job_id)
                .join(experiments, experiments.c.id == jobs.c.experiment_id)
                .join(users, users.c.id == jobs.c.user_id)
                .where(
                    job_tokens.c.token_sha256 == digest,
                    and_(
                        jobs.c.status == Status.RUNNING.value,
                        jobs.c.attempts == job_tokens.c.attempt,
                    ),
                    jobs.c.lease_expires_at >= self._db.clock(),
                )
            ).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise AuthenticationError("unknown or expired job token (the job has ended)", "token")
        user = User(int(row.user_id), row.name, is_admin=False)  # a job never acts as an admin
        return Principal(user, JobGrant(int(row.job_id), int(row.project_id), int(row.number)))

    def find_token(self, token: str | None) -> IssuedToken:
        """The stored record of ``token``, checked as :meth:`authenticate` checks it.

        Raises:
            AuthenticationError: missing, unknown or revoked.
        """
        if not token:
            raise AuthenticationError("an API token is required", "token")
        digest = token_digest(token)
        with self._db.lone_read() as conn:  # every request asks: built once, run by the driver
            found = _TOKEN_BY_DIGEST.first(conn, {"digest": digest})
        row: Any = None if found is None else _TokenRow(*found)
        # The index finds the row; the constant-time compare keeps the check itself timing-safe.
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise AuthenticationError("unknown or revoked API token", "token")
        return IssuedToken(int(row.token_id), digest, _to_user(row))

    def get_token(self, token_id: int) -> IssuedToken:
        """The stored record of the token with that row id (an id_token names the API token it
        was minted from by this id).

        Raises:
            AuthenticationError: no such token (revoked).
        """
        row = self._token_row(api_tokens.c.id == token_id)
        if row is None:
            raise AuthenticationError("the API token this was issued from is revoked", "token")
        return IssuedToken(int(row.token_id), row.token_sha256, _to_user(row))

    def _token_row(self, condition: Any) -> Any:
        """The one token row matching ``condition``, joined with its user (None when none)."""
        with self._db.read() as conn:
            return conn.execute(
                select(api_tokens.c.id.label("token_id"), api_tokens.c.token_sha256, users)
                .join(users, users.c.id == api_tokens.c.user_id)
                .where(condition)
            ).first()

    def revoke_token(self, token: str) -> None:
        """Delete a token. NotFoundError (field ``token``) when it is unknown."""
        with self._db.write() as conn:
            result = conn.execute(
                delete(api_tokens).where(api_tokens.c.token_sha256 == token_digest(token or ""))
            )
        if result.rowcount == 0:
            raise NotFoundError("unknown API token", "token")

    def ensure_admin(self) -> str | None:
        """On a database without users, create ``admin`` and return its first token."""
        with self._db.write() as conn:
            if conn.execute(select(func.count()).select_from(users)).scalar_one():
                return None
            conn.execute(
                users.insert().values(name=ADMIN_NAME, is_admin=True, created_at=self._db.clock())
            )
        return self.create_token(ADMIN_NAME, label="initial admin token")


class SqlUsers(SqlNoun, UserStore):
    """The users half of SqlStore."""

    def me(self) -> User:
        return self._scope.user or LOCAL_USER


def mint_job_token() -> tuple[str, str]:
    """A new job token and the digest stored in its place."""
    token = JOB_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_digest(token)


_TOKEN_BY_DIGEST = DriverStatement(
    select(api_tokens.c.id.label("token_id"), api_tokens.c.token_sha256, users)
    .join(users, users.c.id == api_tokens.c.user_id)
    .where(api_tokens.c.token_sha256 == bindparam("digest"))
)
# its row by name, whichever way it came (SQLite's driver gives plain tuples)
_TokenRow = namedtuple("_TokenRow", ["token_id", "token_sha256", *users.c.keys()])  # type: ignore[misc]

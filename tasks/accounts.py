"""Users and API tokens: creation, listing, authentication, revocation."""

from __future__ import annotations

import hashlib
import secrets

import psycopg
from psycopg_pool import ConnectionPool

from db import users
from db.models import ApiToken, User
from db.pooled import pooled
from tasks.errors import InvalidInput, NotFound
from tasks.logs import get_logger

log = get_logger("llmjobs.accounts")
TOKEN_PREFIX = "llmj_"


def hash_token(token: str) -> str:
    """The stored form of a token (tokens are 32 random bytes, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(
    pool: ConnectionPool, name: str, *, admin: bool = False, email: str | None = None
) -> User:
    """Create a user. Raises InvalidInput(field="name") when the name is invalid or taken."""
    with pool.connection() as conn:
        try:
            user = users.create_user(conn, name, role="admin" if admin else "analyst", email=email)
        except psycopg.errors.UniqueViolation as exc:
            raise InvalidInput("name", f"a user named {name!r} or with that e-mail exists") from exc
        except psycopg.errors.CheckViolation as exc:
            raise InvalidInput("name", "use 1-64 letters, digits, '_', '.', '@' or '-'") from exc
    log.info("user created", user_id=user.id, role=user.role)
    return user


def ensure_user(pool: ConnectionPool, name: str, *, admin: bool = False) -> User:
    """The user named name, created when missing."""
    with pool.connection() as conn:
        found = users.get_user_by_name(conn, name)
    return found or create_user(pool, name, admin=admin)


def list_users(pool: ConnectionPool) -> list[User]:
    with pool.connection() as conn:
        return users.list_users(conn)


def create_token(pool: ConnectionPool, user_name: str, token_name: str = "default") -> str:
    """A new API token for the user; the secret is returned once and only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with pool.connection() as conn:
        user = users.get_user_by_name(conn, user_name)
        if user is None:
            raise InvalidInput("user", f"no user named {user_name!r}")
        token_id = users.insert_token(conn, user.id, token_name, hash_token(token))
    log.info("token created", user_id=user.id, token_id=token_id)
    return token


def authenticate_on(conn: psycopg.Connection, token: str) -> User | None:
    """The user owning a live token, or None for an unknown or revoked one; the token's use is
    recorded on conn (one statement)."""
    if not token or len(token) > 200:
        return None
    return users.use_token(conn, hash_token(token))


authenticate = pooled(authenticate_on)


def list_tokens(pool: ConnectionPool, user_name: str | None = None) -> list[ApiToken]:
    with pool.connection() as conn:
        user_id = None
        if user_name:
            user = users.get_user_by_name(conn, user_name)
            if user is None:
                raise InvalidInput("user", f"no user named {user_name!r}")
            user_id = user.id
        return users.list_tokens(conn, user_id)


def revoke_token(pool: ConnectionPool, token_id: int) -> None:
    with pool.connection() as conn:
        if not users.revoke_token(conn, token_id):
            raise NotFound(f"token {token_id} not found")
    log.info("token revoked", token_id=token_id)

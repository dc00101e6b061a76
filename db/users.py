"""Users and their API tokens."""

from __future__ import annotations

import psycopg

from db.models import ApiToken, Role, User
from db.queries import queries


def create_user(
    conn: psycopg.Connection, name: str, *, role: Role = "analyst", email: str | None = None
) -> User:
    """Insert a user. Raises psycopg.errors.UniqueViolation when the name or e-mail is taken."""
    row = conn.execute(queries["insert_user"], {"name": name, "email": email, "role": role})
    return User.model_validate(row.fetchone())


def get_user_by_name(conn: psycopg.Connection, name: str) -> User | None:
    row = conn.execute(queries["get_user_by_name"], {"name": name}).fetchone()
    return User.model_validate(row) if row else None


def get_user_by_id(conn: psycopg.Connection, user_id: int) -> User | None:
    row = conn.execute(queries["get_user_by_id"], {"id": user_id}).fetchone()
    return User.model_validate(row) if row else None


def get_user_by_email(conn: psycopg.Connection, email: str) -> User | None:
    row = conn.execute(queries["get_user_by_email"], {"email": email}).fetchone()
    return User.model_validate(row) if row else None


def list_users(conn: psycopg.Connection) -> list[User]:
    return [User.model_validate(r) for r in conn.execute(queries["list_users"])]


def insert_token(conn: psycopg.Connection, user_id: int, name: str, token_hash: str) -> int:
    """Store a token's hash; return the token's id."""
    params = {"user_id": user_id, "name": name, "token_hash": token_hash}
    return conn.execute(queries["insert_token"], params).fetchone()["id"]


def use_token(conn: psycopg.Connection, token_hash: str) -> User | None:
    """The user owning a live (not revoked) token with this hash; records the use."""
    row = conn.execute(queries["use_token"], {"token_hash": token_hash}).fetchone()
    return User.model_validate(row) if row else None


def list_tokens(conn: psycopg.Connection, user_id: int | None = None) -> list[ApiToken]:
    rows = conn.execute(queries["list_tokens"], {"user_id": user_id})
    return [ApiToken.model_validate(r) for r in rows]


def revoke_token(conn: psycopg.Connection, token_id: int) -> bool:
    """Revoke a token; False when there is no such token."""
    return conn.execute(queries["revoke_token"], {"id": token_id}).fetchone() is not None

"""Agents: named presets (system prompt, default model and format, and a json agent's default JSON
Schema) a submission can start from."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from db import agents
from db.models import Agent, User
from tasks.errors import InvalidInput, NotFound
from tasks.llm import catalog, schemas
from tasks.llm.formats import FORMATS

MAX_SYSTEM_PROMPT = 16 * 1024


def _check(
    conn: psycopg.Connection,
    name: str,
    default_model: str,
    default_format: str,
    system_prompt: str,
    default_json_schema: Any,
) -> dict[str, Any] | None:
    """Check an agent's fields; return its default JSON Schema checked (None when none)."""
    if not name or not name.strip() or len(name) > 100:
        raise InvalidInput("name", "must be 1 to 100 characters")
    if default_format not in FORMATS:
        raise InvalidInput("default_format", f"one of {', '.join(FORMATS)}")
    if len(system_prompt) > MAX_SYSTEM_PROMPT:
        raise InvalidInput("system_prompt", f"is longer than {MAX_SYSTEM_PROMPT} characters")
    try:
        catalog.check_model(conn, default_model)
    except InvalidInput as exc:
        raise InvalidInput("default_model", exc.message) from exc
    if schemas.given(default_json_schema) and default_format != "json":
        raise InvalidInput(
            "json_schema",
            f"only an agent whose default format is json takes a default JSON Schema "
            f"(the default format is {default_format})",
        )
    return schemas.check_optional(default_json_schema)


def create_agent(
    pool: ConnectionPool,
    owner: User,
    *,
    name: str,
    default_model: str,
    default_format: str = "text",
    system_prompt: str = "",
    description: str = "",
    default_json_schema: Any = None,
) -> Agent:
    """Create an agent; a json agent may hold a default JSON Schema (a dict or its JSON text),
    used by its json submissions that give none. Raises InvalidInput naming the field (a taken
    name included; json_schema for the schema)."""
    with pool.connection() as conn:
        schema = _check(
            conn, name, default_model, default_format, system_prompt, default_json_schema
        )
        try:
            return agents.create_agent(
                conn,
                name=name.strip(),
                default_model=default_model,
                default_format=default_format,
                system_prompt=system_prompt,
                description=description,
                owner_id=owner.id,
                default_json_schema=schema,
            )
        except psycopg.errors.UniqueViolation as exc:
            raise InvalidInput("name", f"an agent named {name!r} exists") from exc


def update_agent(
    pool: ConnectionPool,
    agent_id: int,
    *,
    name: str,
    default_model: str,
    default_format: str,
    system_prompt: str,
    description: str,
    default_json_schema: Any = None,
) -> Agent:
    """Edit an agent (its default JSON Schema as create_agent: none given leaves it none). Raises
    InvalidInput naming the field, NotFound for an unknown id."""
    with pool.connection() as conn:
        schema = _check(
            conn, name, default_model, default_format, system_prompt, default_json_schema
        )
        try:
            found = agents.update_agent(
                conn,
                agent_id,
                name=name.strip(),
                default_model=default_model,
                default_format=default_format,
                system_prompt=system_prompt,
                description=description,
                default_json_schema=schema,
            )
        except psycopg.errors.UniqueViolation as exc:
            raise InvalidInput("name", f"an agent named {name!r} exists") from exc
    if found is None:
        raise NotFound(f"agent {agent_id} not found")
    return found


def list_agents(pool: ConnectionPool) -> list[Agent]:
    with pool.connection() as conn:
        return agents.list_agents(conn)

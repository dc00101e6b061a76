"""Agents: named presets (system prompt, default model and format) a submission can start from."""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from db import agents
from db.models import Agent, User
from tasks.errors import InvalidInput, NotFound
from tasks.llm import catalog
from tasks.llm.formats import FORMATS

MAX_SYSTEM_PROMPT = 16 * 1024


def _check(
    conn: psycopg.Connection,
    name: str,
    default_model: str,
    default_format: str,
    system_prompt: str,
) -> None:
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


def create_agent(
    pool: ConnectionPool,
    owner: User,
    *,
    name: str,
    default_model: str,
    default_format: str = "text",
    system_prompt: str = "",
    description: str = "",
) -> Agent:
    """Create an agent. Raises InvalidInput naming the field (a taken name included)."""
    with pool.connection() as conn:
        _check(conn, name, default_model, default_format, system_prompt)
        try:
            return agents.create_agent(
                conn,
                name=name.strip(),
                default_model=default_model,
                default_format=default_format,
                system_prompt=system_prompt,
                description=description,
                owner_id=owner.id,
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
) -> Agent:
    """Edit an agent. Raises InvalidInput naming the field, NotFound for an unknown id."""
    with pool.connection() as conn:
        _check(conn, name, default_model, default_format, system_prompt)
        try:
            found = agents.update_agent(
                conn,
                agent_id,
                name=name.strip(),
                default_model=default_model,
                default_format=default_format,
                system_prompt=system_prompt,
                description=description,
            )
        except psycopg.errors.UniqueViolation as exc:
            raise InvalidInput("name", f"an agent named {name!r} exists") from exc
    if found is None:
        raise NotFound(f"agent {agent_id} not found")
    return found


def list_agents(pool: ConnectionPool) -> list[Agent]:
    with pool.connection() as conn:
        return agents.list_agents(conn)

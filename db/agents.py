"""Agents: named presets of system prompt, model and format."""

from __future__ import annotations

from typing import Any

import psycopg

from db.models import Agent
from db.queries import json_or_null, queries


def create_agent(
    conn: psycopg.Connection,
    *,
    name: str,
    default_model: str,
    description: str = "",
    system_prompt: str = "",
    default_format: str = "text",
    owner_id: int | None = None,
    default_json_schema: dict[str, Any] | None = None,
) -> Agent:
    """Insert an agent. Raises psycopg.errors.UniqueViolation when the name is taken."""
    params = {
        "name": name,
        "description": description,
        "system_prompt": system_prompt,
        "default_model": default_model,
        "default_format": default_format,
        "owner_id": owner_id,
        "default_json_schema": json_or_null(default_json_schema),
    }
    return Agent.model_validate(conn.execute(queries["insert_agent"], params).fetchone())


def update_agent(
    conn: psycopg.Connection,
    agent_id: int,
    *,
    name: str,
    default_model: str,
    description: str,
    system_prompt: str,
    default_format: str,
    default_json_schema: dict[str, Any] | None = None,
) -> Agent | None:
    params = {
        "id": agent_id,
        "name": name,
        "description": description,
        "system_prompt": system_prompt,
        "default_model": default_model,
        "default_format": default_format,
        "default_json_schema": json_or_null(default_json_schema),
    }
    row = conn.execute(queries["update_agent"], params).fetchone()
    return Agent.model_validate(row) if row else None


def get_agent_by_name(conn: psycopg.Connection, name: str) -> Agent | None:
    row = conn.execute(queries["get_agent_by_name"], {"name": name}).fetchone()
    return Agent.model_validate(row) if row else None


def get_agent_by_id(conn: psycopg.Connection, agent_id: int) -> Agent | None:
    row = conn.execute(queries["get_agent_by_id"], {"id": agent_id}).fetchone()
    return Agent.model_validate(row) if row else None


def list_agents(conn: psycopg.Connection) -> list[Agent]:
    return [Agent.model_validate(r) for r in conn.execute(queries["list_agents"])]

"""The prompt template library: named templates whose every edit is a new version."""

from __future__ import annotations

import difflib
import json
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from db import evidence
from db.evidence import TemplateVersion
from db.models import User
from db.pooled import pooled
from tasks.errors import Forbidden, InvalidInput
from tasks.llm import rendering, schemas

__all__ = [
    "TemplateVersion",
    "diff_versions",
    "get_version",
    "get_version_on",
    "list_templates",
    "save_template",
    "schema_text",
    "versions",
]


def save_template(
    pool: ConnectionPool,
    user: User,
    name: str,
    body: str,
    note: str = "",
    json_schema: Any = None,
) -> TemplateVersion:
    """Save body as the next version of the named template (version 1 when new), with the JSON
    Schema its outputs answer to when json_schema is given (a dict or its JSON text; an empty
    text or {} is none): submitting the version then makes json outputs with that schema.

    Raises InvalidInput (name, body, note, json_schema), Forbidden (someone else's template,
    unless admin).
    """
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name", "must be 1 to 100 characters")
    rendering.check_template(body)
    if len(note) > 1000:
        raise InvalidInput("note", "is longer than 1000 characters")
    schema = schemas.check_optional(json_schema)
    with pool.connection() as conn, conn.transaction():
        current = evidence.get_template_version(conn, name)
        if current and current.owner_id not in (None, user.id) and not user.is_admin:
            raise Forbidden(f"template {name!r} belongs to someone else")
        if current and current.body == body and current.json_schema == schema:
            return current  # nothing changed: no new version
        return evidence.add_template_version(
            conn, name=name, body=body, note=note, user_id=user.id, json_schema=schema
        )


def get_version_on(
    conn: psycopg.Connection, name: str, version: int | None = None
) -> TemplateVersion:
    """A version of the named template (the latest when version is None).

    Raises InvalidInput(field="template_name") when there is no such template or version.
    """
    found = evidence.get_template_version(conn, name, version)
    if found is None:
        which = f"version {version} of " if version else ""
        raise InvalidInput("template_name", f"no {which}template named {name!r}")
    return found


get_version = pooled(get_version_on)


def list_templates(pool: ConnectionPool) -> list[TemplateVersion]:
    """Every named template as its latest version, by name."""
    with pool.connection() as conn:
        return evidence.list_templates(conn)


def versions(pool: ConnectionPool, name: str) -> list[TemplateVersion]:
    """Every version of the named template, newest first."""
    with pool.connection() as conn:
        return evidence.template_versions(conn, name)


def diff_versions(old: TemplateVersion, new: TemplateVersion) -> str:
    """What changed from old to new, as a unified diff of the bodies followed by one of the JSON
    Schemas ("" when both are the same)."""
    return _diff(old.body, new.body, old, new, "") + _diff(
        schema_text(old.json_schema), schema_text(new.json_schema), old, new, " JSON Schema"
    )


def schema_text(json_schema: dict[str, Any] | None) -> str:
    """A JSON Schema as indented JSON in its author's order ("" for none), to show, edit and
    compare."""
    if json_schema is None:
        return ""
    return json.dumps(json_schema, indent=2, ensure_ascii=False) + "\n"


def _diff(old_text: str, new_text: str, old: TemplateVersion, new: TemplateVersion, what: str):
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"{old.name} v{old.version}{what}",
        tofile=f"{new.name} v{new.version}{what}",
    )
    # a text without a final newline would glue its last line to the next diff line
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

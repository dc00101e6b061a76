"""Migrations: a fresh database gets procrastinate's schema and ours; a second run does nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from db.migrate import _our_migrations, _procrastinate_migrations, apply
from tests.conftest import _with_dbname


@pytest.fixture
def empty_db(server_url):
    name = f"llmjobs_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _tables(conn) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def test_migrate_twice_is_a_no_op(empty_db):
    with psycopg.connect(empty_db, row_factory=dict_row) as conn:
        first = apply(conn)
        tables = _tables(conn)
        second = apply(conn)
        recorded = conn.execute("SELECT source, name FROM llmjobs_migrations").fetchall()
    assert first[0] == "procrastinate:schema.sql"
    assert [f"llmjobs:{n}" for n, _ in _our_migrations()] == first[1:]
    assert second == []
    assert {
        "users",
        "api_tokens",
        "agents",
        "llm_outputs",
        "feedback_events",
        "procrastinate_jobs",
        "procrastinate_workers",
    } <= tables
    assert len(recorded) == len(_our_migrations()) + len(_procrastinate_migrations())


def test_upgrade_applies_only_missing_procrastinate_migrations(empty_db):
    with psycopg.connect(empty_db, row_factory=dict_row) as conn:
        apply(conn)
        last = _procrastinate_migrations()[-1][0]
        # Pretend the newest procrastinate migration is new: it must be applied, once.
        conn.execute("DELETE FROM llmjobs_migrations WHERE name = %s", (last,))
        conn.commit()
        applied = apply(conn)
        assert applied == [f"procrastinate:{last}"]
        assert apply(conn) == []


def test_check_constraints_hold(database_url):
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO users (name) VALUES ('u')")
        for column, value in (
            ("status", "done"),
            ("format", "yaml"),
            ("feedback", "meh"),
            ("queue", "urgent"),
            ("kind", "copy"),
        ):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(
                    sql.SQL(
                        "INSERT INTO llm_outputs (user_id, template, model, format, {}) "
                        "SELECT id, 't', 'm', 'text', %s FROM users"
                    ).format(sql.Identifier(column))
                    if column != "format"
                    else sql.SQL(
                        "INSERT INTO llm_outputs (user_id, template, model, format) "
                        "SELECT id, 't', 'm', %s FROM users"
                    ),
                    (value,),
                )

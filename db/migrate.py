"""Schema migrations: our numbered `migrations/*.sql` files and procrastinate's schema.

`apply(conn)` is idempotent: it records every applied file in `llmjobs_migrations` and applies
only what is new, under an advisory lock so two concurrent runs do not race.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import LiteralString, cast

import psycopg
from procrastinate.schema import SchemaManager

from db.queries import queries

OURS = "llmjobs"
PROCRASTINATE = "procrastinate"


def _our_migrations() -> list[tuple[str, str]]:
    folder = resources.files("db") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name, f.read_text(encoding="utf-8")) for f in files]


def _procrastinate_migrations() -> list[tuple[str, str]]:
    folder = Path(SchemaManager.get_migrations_path())
    return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(folder.glob("*.sql"))]


def _execute_script(conn: psycopg.Connection, sql: str) -> None:
    # A whole trusted file from the package, sent as one simple-protocol script.
    conn.execute(cast(LiteralString, sql), prepare=False)


def apply(conn: psycopg.Connection) -> list[str]:
    """Apply what is missing; return the names applied now (empty when up to date)."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute(queries["lock_migrations"])
        conn.execute(queries["create_migrations_table"])

        done = {
            r["name"]
            for r in conn.execute(queries["applied_migrations"], {"source": PROCRASTINATE})
        }
        installed = conn.execute(queries["procrastinate_installed"]).fetchone()["installed"]
        if not installed or not done:
            # A fresh database takes the current schema whole, and a schema installed before this
            # bookkeeping is taken as current: either way its migrations count as applied.
            if not installed:
                _execute_script(conn, SchemaManager.get_schema())
                applied_now.append(f"{PROCRASTINATE}:schema.sql")
            done_now = [name for name, _ in _procrastinate_migrations()]
        else:
            done_now = []
            for name, sql in _procrastinate_migrations():
                if name not in done:
                    _execute_script(conn, sql)
                    done_now.append(name)
                    applied_now.append(f"{PROCRASTINATE}:{name}")
        for name in done_now:
            conn.execute(queries["record_migration"], {"source": PROCRASTINATE, "name": name})

        done = {r["name"] for r in conn.execute(queries["applied_migrations"], {"source": OURS})}
        for name, sql in _our_migrations():
            if name not in done:
                _execute_script(conn, sql)
                conn.execute(queries["record_migration"], {"source": OURS, "name": name})
                applied_now.append(f"{OURS}:{name}")
    return applied_now

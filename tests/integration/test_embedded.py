"""The embedded PostgreSQL `make run` uses without DATABASE_URL: it starts, and its data survives
a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import psycopg
from db import embedded
from tasks.config import data_dir
url = embedded.start(data_dir())
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
    if sys.argv[1] == "write":
        conn.execute("INSERT INTO kept VALUES ('survives')")
    print(",".join(r[0] for r in conn.execute("SELECT v FROM kept")))
"""


@pytest.mark.slow
def test_embedded_server_keeps_data_across_restart(server_dir):
    env = {**os.environ, "LLMJOBS_DATA_DIR": str(server_dir / "data"), "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run("write") == "survives"
    # the first process exited and stopped the server; a new one starts it on the same data
    pid_file = server_dir / "data" / "pg" / "postmaster.pid"
    assert not pid_file.exists()
    assert run("read") == "survives"


@pytest.mark.slow
def test_migrate_on_embedded_server_without_database_url(server_dir):
    env = {**os.environ, "LLMJOBS_DATA_DIR": str(server_dir / "data")}
    env.pop("DATABASE_URL", None)
    llmjobs = Path(sys.executable).parent / "llmjobs"
    first = subprocess.run(
        [str(llmjobs), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert '"created_user": "local"' in first.stdout
    second = subprocess.run(
        [str(llmjobs), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert '"applied": []' in second.stdout

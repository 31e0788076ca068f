"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks (Debian's binaries).

initdb refuses to run as root, so the server runs as the `postgres` system user when we are
root. Trust authentication on loopback only; the data directory is removed on stop.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pyodbc

from devstack.ports import free_port

POSTGRES_DRIVER = "PostgreSQL Unicode"


def _pg_bin(name: str) -> str:
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: run `make deps` (installs Debian's postgresql)")
    return found


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresServer:
    def __init__(self, workdir: Path | None = None, *, max_connections: int = 200):
        self.max_connections = max_connections
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="vb2po-pg-"))
        self.datadir = self.workdir / "data"
        self.port = 0
        self._started = False

    def start(self, timeout: float = 60) -> "PostgresServer":
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user([_pg_bin("initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
                               "--no-sync", "-E", "UTF8", "--locale=C"]),
            check=True, capture_output=True, text=True,
        )
        self.port = free_port()
        opts = self._options()
        subprocess.run(
            _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.workdir / "server.log"),
                               "-o", opts, "-w", "-t", str(int(timeout)), "start"]),
            check=True, capture_output=True, text=True,
        )
        self._started = True
        atexit.register(self.stop)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                pyodbc.connect(self.connection_string("postgres"), timeout=2).close()
                return
            except pyodbc.Error as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept ODBC connections; log: {self.workdir / 'server.log'}") \
                        from exc
                time.sleep(0.1)

    def connection_string(self, database: str) -> str:
        return (
            f"Driver={{{POSTGRES_DRIVER}}};Server=127.0.0.1;Port={self.port};Database={database};"
            f"Uid=postgres;Pwd=unused;UseServerSidePrepare=1"
        )

    def _options(self) -> str:
        return (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -c fsync=off "
                f"-c max_connections={self.max_connections}")

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A fresh (emptied if it exists) database, a copy of `template` if given (files copied:
        much faster than loading the same rows again); returns its ODBC connection string."""
        conn = pyodbc.connect(self.connection_string("postgres"), autocommit=True)
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        finally:
            conn.close()
        return self.connection_string(name)

    def stop(self) -> None:
        if self._started:
            subprocess.run(
                _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
            )
            self._started = False
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- a hard stop and a start on the same data and port (the chaos run) -----------------
    def kill(self) -> None:
        """Stop the server as a crash would: `pg_ctl stop -m immediate` (no checkpoint, every
        connection cut; the next start runs crash recovery). The data directory stays."""
        if self._started:
            subprocess.run(
                _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"]),
                check=True, capture_output=True, text=True,
            )

    def restart(self, timeout: float = 60) -> None:
        """Start the server again after `kill()`: the same data directory, port and options."""
        opts = self._options()
        subprocess.run(
            _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.workdir / "server.log"),
                               "-o", opts, "-w", "-t", str(int(timeout)), "start"]),
            check=True, capture_output=True, text=True,
        )
        self._wait_ready(timeout)

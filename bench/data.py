"""Benchmark data: a backlog of pending payments, and a large idle `CustTr`, loaded fast.

Rows come from the deterministic dataset generator (`devstack.dataset`): invoices, credit
notes and payments of many customers over a year, many rows sharing one minute. A backlog is
the generator's ledger cut off right after the n-th row the producer will select, so the
table also holds the invoices and credit notes a real company has between its payments.

Loading: SQLite through its ODBC driver (`executemany`, ~35,000 rows/s here); PostgreSQL
with `COPY ... FROM STDIN` through psql (~10x faster than row-by-row ODBC inserts).
"""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Iterable, Iterator

from devstack.dataset import VOUCHER_TYPE_PAYMENT, CustTrRow, DatasetSpec, custtr_rows
from devstack.postgres import PostgresServer
from devstack.visma_seed import CUSTTR_INSERT_COLUMNS, chunks, create_tables, custtr_values, insert_custtr
from vb2po.visma.clock import yyyymmdd
from vb2po.visma.db import VismaDatabase

# The dataset's first day: every generated payment is on or after it, so every payment with
# an invoice number is one the producer selects.
LOOKBACK = date(2025, 12, 1)
PROGRESS_EVERY_S = 2.0


def is_selected_payment(row: CustTrRow, lookback: date = LOOKBACK) -> bool:
    """The producer's payment rule (`queries._payment_rule`) for an unmarked row, in Python."""
    return row.vo_tp == VOUCHER_TYPE_PAYMENT and row.am < 0 and row.vo_dt >= yyyymmdd(lookback) and bool(row.invo_no)


def backlog_rows(pending: int, *, seed: int = 7) -> Iterator[CustTrRow]:
    """Ledger rows up to and including the `pending`-th payment the producer selects."""
    spec = DatasetSpec(size=min(1_000_000, max(100, pending * 5 // 2)), seed=seed)
    selected = 0
    for row in custtr_rows(spec):
        yield row
        if is_selected_payment(row):
            selected += 1
            if selected == pending:
                return
    raise ValueError(f"dataset of {spec.size:,} rows has only {selected:,} selectable payments, wanted {pending:,}")


class Progress:
    """`label: n/total unit (rate/s)` on stderr, at most every PROGRESS_EVERY_S seconds."""

    def __init__(self, label: str, total: int | None, unit: str = "rows"):
        self.label, self.total, self.unit = label, total, unit
        self.started = self._last = time.monotonic()
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.say()

    def say(self, final: bool = False) -> None:
        elapsed = max(1e-9, time.monotonic() - self.started)
        of = f"/{self.total:,}" if self.total else ""
        tail = f" in {elapsed:.1f}s" if final else ""
        print(f"  {self.label}: {self.count:,}{of} {self.unit} ({self.count / elapsed:,.0f}/s){tail}",
              file=sys.stderr, flush=True)


def load_sqlite(conn_str: str, rows: Iterable[CustTrRow], *, label: str) -> int:
    """Tables (with the devstack poll index) plus `rows`, through the SQLite ODBC driver."""
    progress = Progress(label, None)
    with VismaDatabase(conn_str) as db:
        create_tables(db)
        for chunk in chunks(rows, 10_000):
            insert_custtr(db, chunk, batch=10_000)
            progress.add(len(chunk))
    progress.say(final=True)
    return progress.count


def psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "psql").exists():
            return str(root / "psql")
    raise RuntimeError("psql not found: run `make deps` (installs Debian's postgresql)")


def psql(server: PostgresServer, database: str, sql: str, *, stdin: bytes | None = None) -> str:
    """Run SQL with psql on the benchmark server; returns stdout, raises with stderr on failure."""
    cmd = [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port),
           "-U", "postgres", "-d", database, "-At", "-c", sql]
    result = subprocess.run(cmd, input=stdin, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.decode(errors='replace')[-2000:]}")
    return result.stdout.decode()


def copy_custtr(server: PostgresServer, database: str, rows: Iterable[CustTrRow], *, label: str) -> int:
    """COPY rows into CustTr through psql, streamed (flat memory) in CSV."""
    cols = ", ".join(f'"{c}"' for c in CUSTTR_INSERT_COLUMNS)
    cmd = [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port),
           "-U", "postgres", "-d", database, "-c", f'\\copy "CustTr" ({cols}) FROM STDIN WITH (FORMAT csv)']
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = Progress(label, None)
    try:
        assert proc.stdin is not None
        for chunk in chunks(rows, 20_000):
            buf = io.StringIO()
            csv.writer(buf).writerows(custtr_values(r) for r in chunk)
            proc.stdin.write(buf.getvalue().encode())
            progress.add(len(chunk))
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"COPY into CustTr failed: {err.decode(errors='replace')[-2000:]}")
    progress.say(final=True)
    return progress.count


def load_postgres(server: PostgresServer, database: str, rows: Iterable[CustTrRow], *, label: str,
                  with_poll_index: bool = True) -> tuple[str, int]:
    """A fresh company database: tables over ODBC, rows with COPY, statistics; (ODBC string, rows)."""
    conn_str = server.create_database(database)
    with VismaDatabase(conn_str) as db:
        create_tables(db, with_poll_index=with_poll_index)
    count = copy_custtr(server, database, rows, label=label)
    psql(server, database, 'VACUUM ANALYZE "CustTr"')
    return conn_str, count

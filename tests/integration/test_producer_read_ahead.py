"""The read-ahead process (producer/read_ahead.py) on real ODBC drivers: a backlog's next page is
read and encoded in a child process while the poller publishes the one before; the child keeps no
cursor, ends with the poll, and neither its death nor the producer's leaves a row skipped, a row
twice or a process behind."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from devstack.visma_seed import insert_custtr
from producer import read_ahead
from producer.publisher import FakePublisher
from tests.builders import payment_row
from tests.integration.test_payment_polling_odbc import make_poller, published_keys
from vb2po.errors import TransientError
from vb2po.visma.db import VismaDatabase
from vb2po.visma.payments import BadRow

DEADLINE_S = 30.0


def _backlog(conn_str: str, n: int = 250) -> list:
    rows = [payment_row(1 + i // 50, 1 + i % 50, ch_tmms=36_000_000 + i) for i in range(n)]
    with VismaDatabase(conn_str) as db:
        insert_custtr(db, rows)
    return rows


class _Started:
    """Every ReadAhead the poller starts (the real class, recorded)."""

    def __init__(self, monkeypatch):
        self.made: list[read_ahead.ReadAhead] = []
        real = read_ahead.ReadAhead

        def make(source):
            ahead = real(source)
            self.made.append(ahead)
            return ahead
        monkeypatch.setattr("producer.payments.ReadAhead", make)


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S:.0f} s: {what}"
        time.sleep(0.05)


def test_a_backlog_is_read_ahead_by_one_child_process_that_ends_with_the_poll(company_db, monkeypatch):
    rows = _backlog(company_db)
    started = _Started(monkeypatch)
    publisher = FakePublisher()

    outcome = make_poller(company_db, publisher, page_size=100).poll_once()

    assert outcome.published == 250
    assert sorted(published_keys(publisher)) == sorted((r.jno, r.entno) for r in rows)
    assert len(started.made) == 1
    assert started.made[0].process.exitcode is not None  # stopped when the poll ended


class _KillsReadAheadOnTransaction(FakePublisher):
    """Kills the read-ahead process at its n-th transaction, while it reads the next page."""

    def __init__(self, started: _Started, n: int):
        super().__init__()
        self.started, self.n, self.calls = started, n, 0

    def publish(self, messages):
        self.calls += 1
        if self.calls == self.n:
            process = self.started.made[-1].process
            os.kill(process.pid, signal.SIGKILL)
            _wait_until(lambda: process.exitcode is not None, "the read-ahead process dies")
        super().publish(messages)


def test_a_read_ahead_process_that_dies_is_replaced_by_reading_in_process_and_no_row_is_lost(
        company_db, monkeypatch, caplog):
    rows = _backlog(company_db, 450)
    started = _Started(monkeypatch)
    publisher = _KillsReadAheadOnTransaction(started, 2)
    poller = make_poller(company_db, publisher, page_size=100)

    outcome = poller.poll_once()

    assert outcome.published == 450
    keys = published_keys(publisher)
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted((r.jno, r.entno) for r in rows)
    assert poller.state.payments_cursor.ch_time == 36_000_449
    assert "read-ahead process died" in caplog.text
    assert len(started.made) == 1  # the rest of that poll read in-process
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(20, 1 + i, ch_tmms=36_100_000 + i) for i in range(150)])
    assert poller.poll_once().published == 150  # the next poll starts a new one
    assert len(started.made) == 2


def test_after_a_failed_transaction_the_next_poll_reads_ahead_from_the_committed_cursor(company_db, monkeypatch):
    """The page read ahead when publishing failed is dropped with its process; the next poll starts
    again from the cursor the last commit left, so every row is published exactly once."""
    rows = _backlog(company_db, 450)
    started = _Started(monkeypatch)

    class FailsThird(FakePublisher):
        calls = 0

        def publish(self, messages):
            self.calls += 1
            if self.calls == 3:
                raise TransientError("publish failed", reason="kafka")
            super().publish(messages)
    publisher = FailsThird()
    poller = make_poller(company_db, publisher, page_size=100)
    with pytest.raises(TransientError, match="publish failed"):
        poller.poll_once()
    assert poller.state.payments_cursor.ch_time == 36_000_199
    assert started.made[0].process.exitcode is not None

    assert poller.poll_once().published == 250
    keys = published_keys(publisher)
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted((r.jno, r.entno) for r in rows)
    assert len(started.made) == 2


_PRODUCER = """
import sys, threading, psutil
from datetime import datetime, timezone
from producer.publisher import FakePublisher
from tests.integration.test_payment_polling_odbc import make_poller

class Stuck(FakePublisher):
    def publish(self, messages):
        # the next page is being read ahead now: say who runs, then hang like a stuck broker
        print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
        threading.Event().wait()

make_poller(sys.argv[1], Stuck(), page_size=100).poll_once()
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_read_ahead_process_does_not_outlive_its_producer(company_db, how, tmp_path: Path):
    _backlog(company_db)
    script = tmp_path / "stuck_producer.py"
    script.write_text(_PRODUCER)
    proc = subprocess.Popen([sys.executable, str(script), company_db], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        children = [int(p) for p in line.split()]
        assert children, f"no read-ahead process started (exit code {proc.poll()})"
        os.kill(proc.pid, how)
        proc.wait(DEADLINE_S)
        _wait_until(lambda: _gone(children), f"processes {children} end after the producer's {how.name}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_errors_cross_the_process_boundary_with_their_reason():
    bad = pickle.loads(pickle.dumps(BadRow("amount_precision", "too many decimals")))
    assert (type(bad), bad.reason, str(bad)) == (BadRow, "amount_precision", "too many decimals")
    lost = pickle.loads(pickle.dumps(TransientError("db gone", reason="db_unavailable", retry_after=2.0)))
    assert (type(lost), lost.reason, lost.retry_after, str(lost)) == (TransientError, "db_unavailable", 2.0, "db gone")

"""SIGKILL the producer at random moments while it publishes a backlog: nothing is lost, and
because events and cursor commit in one Kafka transaction, nothing is published twice."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from devstack.stack import write_settings
from devstack.visma_seed import insert_custtr
from schemas.codec import decode
from schemas.events import payment_event_id
from tests.builders import payment_row
from tests.kafka_reading import read_committed, stable_end
from tests.processes import sigkill, start_vb2po, terminate
from tests.services import wait_for
from vb2po.visma.db import VismaDatabase

BACKLOG = 12_000


def stack_dump_when_slow(proc, started: float, after_s: float = 20) -> bool:
    """Diagnostics only: a producer that has not published for a while writes every thread's
    stack into its log (SIGUSR1, see vb2po.cli), so a hang shows where it waits."""
    if time.monotonic() - started > after_s and not getattr(proc, "dumped", False):
        proc.dumped = True
        os.kill(proc.pid, signal.SIGUSR1)
    return False


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_and_doubles_nothing(make_settings, sqlite_company_db, tmp_path):
    rows = [payment_row(1 + i // 100, 1 + i % 100, ch_dt=20260301 + (i // 4000), ch_tmms=36_000_000 + (i % 50) * 60_000)
            for i in range(BACKLOG)]
    with VismaDatabase(sqlite_company_db) as db:
        insert_custtr(db, rows)
    data = make_settings({1: sqlite_company_db}, as_dict=True, producer={"page_size": 250})
    settings_file = write_settings(tmp_path / "settings.yaml", data)
    topic, bootstrap = data["kafka"]["topics"]["payments"], data["kafka"]["bootstrap_servers"]
    published = lambda: len(read_committed(bootstrap, topic))  # noqa: E731
    progress = lambda: stable_end(bootstrap, topic)  # noqa: E731
    rng = random.Random(20261127)

    kills = 0
    while kills < 4 and published() < BACKLOG:
        proc = start_vb2po(settings_file, "producer", tmp_path / "producer.log")
        started = time.monotonic()
        try:
            before = progress()
            # wait until this incarnation has committed something, then kill it at a random moment
            wait_for(lambda before=before, proc=proc, started=started:
                     progress() > before or proc.poll() is not None or stack_dump_when_slow(proc, started),
                     timeout=60, interval=0.05, what="the producer to publish")
            proc.wait(rng.uniform(0.05, 0.6))  # let it run a random moment longer
        except subprocess.TimeoutExpired:
            pass  # still running: the normal case
        finally:
            sigkill(proc)  # also when the wait failed: no producer outlives the test
        kills += 1

    proc = start_vb2po(settings_file, "producer", tmp_path / "producer.log")
    try:
        wait_for(lambda: published() >= BACKLOG, timeout=120, interval=0.5, what="the whole backlog")
    finally:
        terminate(proc)

    events = [decode(r.value) for r in read_committed(bootstrap, topic)]
    keys = [(e.payload.jno, e.payload.entno) for e in events]
    assert kills >= 1
    assert len(set(keys)) == BACKLOG  # nothing lost
    assert len(keys) == BACKLOG  # nothing doubled: events and cursor commit together
    assert all(e.event_id == payment_event_id(1, e.payload.jno, e.payload.entno) for e in events)


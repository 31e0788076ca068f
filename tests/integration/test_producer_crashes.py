"""SIGKILL the producer at random moments while it publishes a backlog: nothing is lost, and
because events and cursor commit in one Kafka transaction, nothing is published twice."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.stack import write_settings
from devstack.visma_seed import insert_custtr
from producer.state import CompanyState, load_states
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



@pytest.mark.slow
def test_restarts_every_45_s_do_not_put_off_the_sweep(make_settings, postgres_company_db, tmp_path):
    """Issue 12: the sweep's timer used to start again with the process, so a producer restarted
    more often than sweep_interval_s never swept. Its last run is now kept in the state topic: a
    row committed far behind the cursor (beyond the re-scan) while the producer is SIGKILLed every
    45 s is published within sweep_interval_s of its commit, by whichever incarnation is running."""
    sweep_interval_s = 60
    data = make_settings({1: postgres_company_db}, as_dict=True,
                         producer={"sweep_interval_s": sweep_interval_s, "sweep_grace_s": 10})
    settings_file = write_settings(tmp_path / "settings.yaml", data)
    settings = make_settings({1: postgres_company_db})
    bootstrap, topic = settings.kafka.bootstrap_servers, settings.kafka.topics.payments
    now = datetime.now(ZoneInfo(settings.visma_timezone))

    def stamped(jno: int, moment: datetime):
        return payment_row(jno, 1, ch_dt=moment.year * 10000 + moment.month * 100 + moment.day,
                           ch_tmms=((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1000)

    def keys() -> set[tuple[int, int]]:
        return {(e.payload.jno, e.payload.entno) for e in map(lambda r: decode(r.value), read_committed(bootstrap, topic))}

    with VismaDatabase(postgres_company_db) as db:
        insert_custtr(db, [stamped(1, now)])
    started_at = time.monotonic()
    proc = start_vb2po(settings_file, "producer", tmp_path / "producer.log")
    lives, committed_at = 1, None
    try:
        wait_for(lambda: (1, 1) in keys(), timeout=60, interval=0.5, what="the first payment")
        first = wait_for(lambda: load_states(settings.kafka).get(1, CompanyState(1)).last_sweep_at, timeout=30,
                         interval=0.5, what="the sweep soon after the first start")
        # A transaction that wrote a payment an hour ago commits now: behind the cursor, far beyond
        # the re-scan window (overlap_s), so only the sweep can find it.
        with VismaDatabase(postgres_company_db) as db:
            insert_custtr(db, [stamped(2, now - timedelta(hours=1))])
        committed_at = time.monotonic()
        while (2, 1) not in keys():
            assert time.monotonic() - committed_at < sweep_interval_s + 15, \
                f"the row committed behind the cursor was not published within {sweep_interval_s} s (+15 s slack)"
            if time.monotonic() - started_at >= 45 * lives:  # the restart storm
                sigkill(proc)
                proc = start_vb2po(settings_file, "producer", tmp_path / "producer.log")
                lives += 1
            time.sleep(0.5)
        published_after = time.monotonic() - committed_at
    finally:
        sigkill(proc)
    assert lives >= 2  # it was published by a later incarnation than the one that last swept before
    assert published_after <= sweep_interval_s + 15
    assert load_states(settings.kafka)[1].last_sweep_at >= first + sweep_interval_s - 1

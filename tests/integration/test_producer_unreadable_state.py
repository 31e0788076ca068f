"""A record in the producer's state topic that does not read (written by a hostile or broken
writer, or an incompatible version) is passed over at start: the producer still starts and
publishes every payment, from the last state it can read."""
from __future__ import annotations

import pytest

from devstack.stack import to_settings, write_settings
from devstack.visma_seed import insert_custtr
from producer.state import company_key
from schemas.codec import decode
from tests.builders import payment_row
from tests.kafka_reading import read_committed
from tests.processes import start_vb2po, terminate
from tests.services import wait_for
from vb2po.kafka.clients import plain_producer
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration


def test_a_producer_whose_state_record_does_not_read_still_publishes_every_payment(make_settings, sqlite_company_db,
                                                                                   tmp_path):
    first = [payment_row(1, 1 + i, ch_dt=20260301, ch_tmms=36_000_000 + i * 1000) for i in range(40)]
    later = [payment_row(2, 1 + i, ch_dt=20260302, ch_tmms=36_000_000 + i * 1000) for i in range(30)]
    with VismaDatabase(sqlite_company_db) as db:
        insert_custtr(db, first)
    data = make_settings({1: sqlite_company_db}, as_dict=True)
    settings_file = write_settings(tmp_path / "settings.yaml", data)
    settings = to_settings(data)
    topic, bootstrap = data["kafka"]["topics"]["payments"], data["kafka"]["bootstrap_servers"]
    published = lambda: {(e.payload.jno, e.payload.entno) for e in (decode(r.value) for r in read_committed(bootstrap, topic))}  # noqa: E731

    proc = start_vb2po(settings_file, "producer", tmp_path / "producer.log")
    try:
        wait_for(lambda: len(published()) >= 40, timeout=60, interval=0.3, what="the first 40 payments")
    finally:
        terminate(proc)

    writer = plain_producer(settings.kafka, "hostile-writer")
    try:
        writer.send(settings.kafka.topics.producer_state, key=company_key(1), value=b'{"payments_cursor": "soon"}').get(30)
    finally:
        writer.close(10)
    with VismaDatabase(sqlite_company_db) as db:
        insert_custtr(db, later)

    proc = start_vb2po(settings_file, "producer", tmp_path / "producer-2.log")
    try:
        wait_for(lambda: len(published()) >= 70 or proc.poll() is not None, timeout=60, interval=0.3,
                 what="the 30 later payments")
        assert proc.poll() is None, "the producer stopped"
    finally:
        terminate(proc)
    assert published() == {(r.jno, r.entno) for r in first + later}
    log = (tmp_path / "producer-2.log").read_text()
    assert "does not read" in log and "passed over" in log

"""`consumer.concurrency` is the number of PowerOffice requests one consumer has open at once.
The consumer runs more lanes than that (while some claim, mark and read Kafka, the others keep
the window full), so the cap is a semaphore around each request: PowerOffice, here the sandbox,
must never see more, and under a backlog it should see exactly that many."""
from __future__ import annotations

import pytest

from devstack.dataset import DatasetSpec
from tests.processes import start_vb2po, terminate
from tests.services import wait_for

pytestmark = pytest.mark.integration

WINDOW = 4


def test_a_backlog_fills_the_request_window_and_never_goes_beyond_it(make_world):
    world = make_world(DatasetSpec(size=700, seed=41), consumer={"concurrency": WINDOW})
    payments = world.expected_payments
    assert payments >= 150  # enough for every lane to be busy at once many times over
    world.sandbox.control.set_faults(latency_ms=150)  # each request stays open a while
    producer = start_vb2po(world.settings_file, "producer", world.tmp / "producer.log")
    try:
        world.sandbox.control.reset_stats()
        consumer = start_vb2po(world.settings_file, "consumer", world.tmp / "consumer.log")
        try:
            wait_for(lambda: world.markers() >= payments, timeout=180, interval=0.5, what=f"all {payments} markers")
        finally:
            terminate(consumer)
    finally:
        terminate(producer)
    stats = world.sandbox.control.stats()
    assert stats["most_open"] == WINDOW, stats  # never more than the setting, and the backlog filled it
    references = [v["ExternalImportReference"] for v in world.vouchers()]
    assert len(references) == len(set(references)) == payments
    assert world.wrong_balances() == []

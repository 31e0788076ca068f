"""A payment whose processing takes the whole consumer process down (a driver segfault, the OOM
killer) is recognised after the restarts and set aside as one dead letter; the consumer does not
crash-loop, and every other payment is registered and marked."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from consumer.crash_guard import GIVE_UP_ALONE
from consumer.payments import external_import_reference
from devstack.dataset import DatasetSpec, payment_rows
from tests.fixtures.world import LOOKBACK
from tests.kafka_reading import read_committed
from tests.processes import start_vb2po, terminate
from tests.services import wait_for

SPEC = DatasetSpec(size=300, seed=5)


def start_crashing_consumer(world, target: str) -> subprocess.Popen:
    log = open(world.tmp / "consumer.log", "a")
    return subprocess.Popen([sys.executable, "-m", "tests.crashing_vb2po", "--config", str(world.settings_file), "consumer"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "VB2PO_TEST_CRASH_ON": target})


def test_a_payment_that_kills_the_consumer_is_dead_lettered_after_a_few_restarts(make_world):
    world = make_world(SPEC, consumer={"instance_id": "consumer-crash-guard"})
    rows = list(payment_rows(SPEC, on_or_after=LOOKBACK))
    killer = rows[len(rows) // 2]
    settings = world.settings
    producer = start_vb2po(world.settings_file, "producer", world.tmp / "producer.log")
    deaths = 0
    consumer = start_crashing_consumer(world, f"{killer.jno}:{killer.entno}")

    def settled() -> bool:
        nonlocal consumer, deaths
        if consumer.poll() is not None:  # died: started again, as Kubernetes would
            assert consumer.returncode == 139, f"the consumer stopped otherwise: {consumer.returncode}"
            deaths += 1
            assert deaths <= GIVE_UP_ALONE + 6, "the consumer crash-loops"
            consumer = start_crashing_consumer(world, f"{killer.jno}:{killer.entno}")
        return world.markers() >= world.expected_payments - 1

    try:
        wait_for(settled, timeout=240, interval=0.5, what="every payment but the one that kills the consumer")
        letters = wait_for(lambda: [json.loads(r.value) for r in read_committed(settings.kafka.bootstrap_servers,
                                                                                  settings.kafka.topics.dead_letters)],
                           timeout=30, what="the dead letter")
        assert consumer.poll() is None, "the consumer is running"
    finally:
        terminate(consumer)
        terminate(producer)
    assert [letter["reason"] for letter in letters] == ["crashed_consumer"]
    assert f"JNo={killer.jno}" in json.dumps(letters[0]) or str(killer.jno) in json.dumps(letters[0]["original"])
    assert "stopped" in letters[0]["error"] and "set aside unapplied" in letters[0]["error"]
    assert GIVE_UP_ALONE <= deaths <= GIVE_UP_ALONE + 6
    references = {v["ExternalImportReference"] for v in world.vouchers()}
    assert external_import_reference(1, killer.jno, killer.entno) not in references
    assert len(references) == world.expected_payments - 1
    assert world.markers() == world.expected_payments - 1

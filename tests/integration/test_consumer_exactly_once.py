"""Whatever crashes, retries, restarts or replays happen: each payment is registered in
PowerOffice exactly once, its Visma row is marked exactly once, and every balance is right.
The sandbox accepts a second voucher with the same reference here (PowerOffice does not promise
to refuse one), so a duplicate would show."""
from __future__ import annotations

import random
import subprocess

import pytest

from devstack.dataset import DatasetSpec
from tests.processes import sigkill, start_vb2po, terminate
from tests.services import running, wait_for

SPEC_2000 = DatasetSpec(size=4370, seed=11)  # 2,000 payments on or after the lookback date


def assert_exactly_once(world) -> None:
    vouchers = world.vouchers()
    references = [v["ExternalImportReference"] for v in vouchers]
    assert len(references) == len(set(references)) == world.expected_payments
    assert world.markers() == world.expected_payments
    assert world.wrong_balances() == []


@pytest.mark.slow
def test_sigkill_of_the_consumer_20_times_while_2000_payments_flow(make_world):
    world = make_world(SPEC_2000, unique_references=False, consumer={"instance_id": "consumer-under-test", "concurrency": 8})
    assert world.expected_payments == 2000
    producer = start_vb2po(world.settings_file, "producer", world.tmp / "producer.log")
    rng = random.Random(27)
    try:
        for _ in range(20):
            consumer = start_vb2po(world.settings_file, "consumer", world.tmp / "consumer.log")
            try:
                consumer.wait(rng.uniform(1.0, 3.0))
            except subprocess.TimeoutExpired:
                pass  # still running: the normal case
            finally:
                sigkill(consumer)
        applied_before_last_start = len(world.vouchers())
        consumer = start_vb2po(world.settings_file, "consumer", world.tmp / "consumer.log")
        try:
            wait_for(lambda: world.markers() >= 2000, timeout=300, interval=0.5, what="all 2,000 markers")
        finally:
            terminate(consumer)
    finally:
        terminate(producer)
    assert 0 < applied_before_last_start  # the kills really hit a consumer at work
    assert_exactly_once(world)


@pytest.mark.slow
def test_faults_broker_restart_and_lost_database_connections_change_nothing(make_world, kafka_cluster, postgres_server):
    world = make_world(DatasetSpec(size=900, seed=12), database="postgres", unique_references=False, consumer={"concurrency": 8})
    world.sandbox.control.set_faults(error_share=0.2, error_status=503, timeout_share=0.05, hold_seconds=3,
                                     lost_response_share=0.05, lost_response_mode="drop", seed=5)
    settings = world.settings
    with running(settings):
        wait_for(lambda: world.markers() >= world.expected_payments // 4, timeout=240, what="a quarter applied")
        kafka_cluster.stop_node(0)  # the broker goes away mid-run ...
        kafka_cluster.start_node(0)  # ... and comes back on the same port with its data
        wait_for(lambda: world.markers() >= world.expected_payments // 2, timeout=240, what="half applied")
        _kill_database_connections(postgres_server, world.connection_string)
        wait_for(lambda: world.markers() >= world.expected_payments, timeout=400, interval=0.5, what="all applied")
    world.sandbox.control.clear_faults()
    assert world.sandbox.control.request_count("POST /v2/Vouchers/BankJournals", 503) > 0  # faults really hit
    assert world.sandbox.control.request_count("GET /v2/Customerledger/Statement") > 0  # and were looked up
    assert_exactly_once(world)


def _kill_database_connections(postgres_server, conn_str: str) -> None:
    import pyodbc

    database = conn_str.split("Database=")[1].split(";")[0]
    admin = pyodbc.connect(postgres_server.connection_string("postgres"), autocommit=True)
    try:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()",
            database).fetchone()[0]
    finally:
        admin.close()
    assert killed > 0


def test_replaying_the_whole_payments_topic_registers_nothing_twice(make_world):
    world = make_world(DatasetSpec(size=300, seed=13), unique_references=False)
    with running(world.settings):
        wait_for(lambda: world.markers() >= world.expected_payments, timeout=120, what="all applied")
    posts_before = world.sandbox.control.request_count("POST /v2/Vouchers/BankJournals")
    vouchers_before = len(world.vouchers())

    replay = dict(world.settings_data)
    replay["kafka"] = {**replay["kafka"], "consumer_group": replay["kafka"]["consumer_group"] + "-replay"}
    from devstack.stack import to_settings
    from tests.kafka_reading import read_committed

    total = len(read_committed(replay["kafka"]["bootstrap_servers"], replay["kafka"]["topics"]["payments"]))
    from vb2po import metrics
    consumed = lambda: metrics.EVENTS_SKIPPED.labels("payment", "already_marked")._value.get()  # noqa: E731
    skipped_before = consumed()
    with running(to_settings(replay), producer=False):  # a new group reads the topic from offset 0
        wait_for(lambda: consumed() - skipped_before >= total, timeout=120, what="the whole topic replayed")
    assert len(world.vouchers()) == vouchers_before
    assert world.sandbox.control.request_count("POST /v2/Vouchers/BankJournals") == posts_before  # not even a call
    assert_exactly_once(world)


def test_concurrent_consumers_share_the_work_and_still_apply_each_payment_once(make_world):
    world = make_world(DatasetSpec(size=600, seed=14), unique_references=False)
    settings = world.settings
    with running(settings):
        extra = running(settings, producer=False)
        extra.__enter__()
        try:
            wait_for(lambda: world.markers() >= world.expected_payments, timeout=180, what="all applied")
        finally:
            extra.__exit__(None, None, None)
    assert_exactly_once(world)



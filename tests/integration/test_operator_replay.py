"""Replay, the way an operator does it: `vb2po replay` against the real broker, with payments
applied in the PowerOffice sandbox and marked in Visma over ODBC. A replay must never register
a payment twice: it is safe because applying is idempotent."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from admin.actions.kafka_view import KafkaView
from admin.api.audit import read_audit
from consumer.payments import external_import_reference
from devstack.visma_seed import insert_custtr
from tests.builders import payment_row
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.operator_stack import make_settings, operator_settings, run_cli, settings_file, token_for
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(kafka_bootstrap, sandbox_server, sqlite_company_db, tmp_path):
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db}, {1: SANDBOX_CLIENT_KEY})
    settings = make_settings(data)
    return {"settings": settings, "path": settings_file(tmp_path, data), "db": sqlite_company_db,
            "token": token_for(settings, "ida")}


def pay(setup, invoice, jno: int) -> tuple[int, int]:
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=2)
    day = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    with VismaDatabase(setup["db"]) as db:
        insert_custtr(db, [payment_row(jno, 1, ch_dt=day, ch_tmms=ms, vo_dt=day, amount="-10.00",
                                       invoice_no=str(invoice.invoice_no), cust_no=invoice.cust_no)])
    return jno, 1


def applied(setup, keys) -> bool:
    with VismaDatabase(setup["db"]) as db:
        return all(list(db.query('SELECT "Gr4" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', list(k)))[0][0] == 1
                   for k in keys)


def vouchers(sandbox_server, keys) -> list[int]:
    control = sandbox_server.control
    return [len(control.vouchers_with_reference(SANDBOX_CLIENT_KEY, external_import_reference(1, *k))) for k in keys]


def replay(capsys, setup, services, *args):
    return run_cli(capsys, "replay", *args, "--admin-url", services["admin"].url, "--token", setup["token"])


def group_state(settings, group=None):
    with KafkaView(settings.kafka) as view:
        return view.group(group or settings.kafka.consumer_group)


def left(settings, group=None) -> int:
    kafka = settings.kafka
    with KafkaView(kafka) as view:
        return sum(view.pending(group or kafka.consumer_group, [kafka.topics.payments, kafka.topics.credit_blocks]).values())


def test_a_dry_run_lists_what_would_be_processed_again_and_a_replay_waits_for_the_consumers_to_stop(
        setup, sandbox_server, fresh_invoice, capsys):
    settings = setup["settings"]
    with running(settings) as services:
        keys = [pay(setup, fresh_invoice, fresh_invoice.invoice_no * 10 + i) for i in (1, 2)]
        wait_for(lambda: applied(setup, keys) and left(settings) == 0, timeout=90, what="both payments applied")
        with KafkaView(settings.kafka) as view:
            before = view.committed(settings.kafka.consumer_group, view.partitions(settings.kafka.topics.payments))
        code, out, err = replay(capsys, setup, services, "--to-beginning", "--topic", "payments", "--dry-run")
        assert code == 0, err
        assert all(f"JNo={k[0]};EntNo=1" in out for k in keys)
        assert "dry run: 2 event(s) would be processed again, 0 skipped; nothing changed" in out
        code, out, err = replay(capsys, setup, services, "--to-beginning", "--topic", "payments")
        assert code == 1 and "active member" in err and "--through-group" in err
        with KafkaView(settings.kafka) as view:
            assert view.committed(settings.kafka.consumer_group, view.partitions(settings.kafka.topics.payments)) == before
    refused = [e for e in read_audit(settings.kafka) if e.action == "replay"]
    assert [(e.actor, e.outcome) for e in refused] == [("ida", "conflict")]


def test_replaying_from_the_beginning_after_stopping_the_consumers_registers_no_payment_twice(
        setup, sandbox_server, fresh_invoice, capsys):
    settings = setup["settings"]
    with running(settings):
        keys = [pay(setup, fresh_invoice, fresh_invoice.invoice_no * 10 + i) for i in (1, 2)]
        wait_for(lambda: applied(setup, keys), timeout=90, what="both payments applied")
    assert vouchers(sandbox_server, keys) == [1, 1]

    with running(settings, consumer=False) as services:  # the consumers are stopped; the producer runs
        wait_for(lambda: not group_state(settings).active, timeout=60, what="the consumer group to be empty")
        code, out, err = replay(capsys, setup, services, "--to-beginning")
        assert code == 0, err
        assert "2 event(s) will be processed again" in out
        assert left(settings) == 2

    with running(settings) as services:  # the consumers start again and process both events again
        wait_for(lambda: left(settings) == 0, timeout=90, what="the consumers to catch up")
        code, out, _ = run_cli(capsys, "status", "--json", "--admin-url", services["admin"].url,
                               "--token", setup["token"])
        assert code == 0 and json.loads(out)["consumer"]["lag"] == {"payments": 0, "credit-blocks": 0}
    assert vouchers(sandbox_server, keys) == [1, 1]  # idempotent: no new voucher in PowerOffice


def test_replaying_through_a_separate_group_leaves_the_running_consumers_alone_and_registers_nothing_twice(
        setup, sandbox_server, fresh_invoice, capsys):
    settings = setup["settings"]
    group = settings.kafka.consumer_group + "-replay"
    with running(settings) as services:
        keys = [pay(setup, fresh_invoice, fresh_invoice.invoice_no * 10 + i) for i in (1, 2)]
        wait_for(lambda: applied(setup, keys), timeout=90, what="both payments applied")
        code, out, err = replay(capsys, setup, services, "--to-beginning", "--through-group", group)
        assert code == 0, err
        assert f"vb2po consumer --group {group} --until-caught-up" in out
        assert left(settings, group) == 2 and group_state(settings).active  # the regular consumers still run
        code, _, err = run_cli(capsys, "--config", str(setup["path"]), "consumer", "--group", group, "--until-caught-up")
        assert code == 0, err
        assert left(settings, group) == 0 and "0 record(s) left" in err
    assert vouchers(sandbox_server, keys) == [1, 1]


def test_replaying_to_a_point_in_time_picks_only_the_events_published_since(setup, take_fresh_invoice, capsys):
    settings = setup["settings"]
    invoice = take_fresh_invoice()
    with running(settings) as services:
        first = pay(setup, invoice, invoice.invoice_no * 10 + 1)
        wait_for(lambda: applied(setup, [first]), timeout=90, what="the first payment applied")
        between = datetime.now(timezone.utc)
        second = pay(setup, invoice, invoice.invoice_no * 10 + 2)
        wait_for(lambda: applied(setup, [second]) and left(settings) == 0, timeout=90, what="the second payment applied")
        code, out, err = replay(capsys, setup, services, "--to-time", between.isoformat(), "--dry-run", "--json")
        assert code == 0, err
        plan = json.loads(out)
        assert [e["source_key"] for e in plan["events"]] == [f"JNo={second[0]};EntNo=1"]
        assert plan["again"] == 1 and plan["dry_run"] is True

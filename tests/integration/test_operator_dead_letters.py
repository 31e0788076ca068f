"""Dead letters, the way an operator handles them: `vb2po dead-letters list | show | redrive`
against the real broker, with PowerOffice (the sandbox) refusing payments into a locked period
until the lock date is moved back, and a Visma row the producer could not turn into an event."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from admin.actions.kafka_view import KafkaView
from consumer.payments import external_import_reference
from devstack.visma_seed import insert_custtr
from sandbox.seed import DEFAULT_LOCK_DATE
from tests.builders import payment_row
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.operator_stack import make_settings, operator_settings, run_cli, token_for
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration


def marked(db_conn: str, keys) -> list[bool]:
    with VismaDatabase(db_conn) as db:
        return [list(db.query('SELECT "Gr4" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', list(k)))[0][0] == 1
                for k in keys]


def test_dead_letters_are_listed_shown_and_redriven_one_a_selection_and_all_with_the_same_idempotency(
        kafka_bootstrap, sandbox_server, sqlite_company_db, fresh_invoice, capsys):
    settings = make_settings(operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db},
                                               {1: SANDBOX_CLIENT_KEY}))
    token = token_for(settings, "ida")
    control = sandbox_server.control
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=2)
    day = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    base = fresh_invoice.invoice_no * 10
    keys = [(base + i, 1) for i in range(1, 5)]
    rows = [payment_row(j, e, ch_dt=day, ch_tmms=ms, vo_dt=day, amount="-5.00", invoice_no=str(fresh_invoice.invoice_no),
                        cust_no=fresh_invoice.cust_no) for j, e in keys]
    rows.append(payment_row(base + 9, 1, ch_dt=day, ch_tmms=ms, vo_dt=20261032))  # no real voucher date: a bad row
    control.set_lock_date(SANDBOX_CLIENT_KEY, date.today())  # the period is closed in PowerOffice
    with VismaDatabase(sqlite_company_db) as db:
        insert_custtr(db, rows)

    with running(settings) as services:
        cli = ["--admin-url", services["admin"].url, "--token", token]

        def letters(*args):
            code, out, err = run_cli(capsys, "dead-letters", "list", "--json", *args, *cli)
            assert code == 0, err
            return json.loads(out)

        found = wait_for(lambda: len(letters()) == 5 and letters(), timeout=90, what="five dead letters")
        consumer = {letter["source_key"]: letter for letter in found if letter["stage"] == "consumer"}
        assert sorted(consumer) == sorted(f"JNo={j};EntNo=1" for j, _ in keys)
        assert {letter["reason"] for letter in consumer.values()} == {"lock_date"}
        [producer_letter] = [letter for letter in found if letter["stage"] == "producer"]
        assert producer_letter["reason"] == "invalid_date"

        ids = [consumer[f"JNo={j};EntNo=1"]["id"] for j, _ in keys]
        code, out, _ = run_cli(capsys, "dead-letters", "show", ids[0], *cli)
        shown = json.loads(out)
        assert code == 0 and shown["reason"] == "lock_date" and "lock date" in shown["error"].lower()
        assert json.loads(shown["original"])["payload"]["jno"] == keys[0][0]

        control.set_lock_date(SANDBOX_CLIENT_KEY, DEFAULT_LOCK_DATE)  # the fix: the period is open again

        code, out, err = run_cli(capsys, "dead-letters", "redrive", ids[0], *cli)  # one
        assert code == 0 and "1 redriven, 0 skipped" in out, err
        wait_for(lambda: marked(sqlite_company_db, keys[:1]) == [True], timeout=60, what="the first redriven payment")

        code, out, _ = run_cli(capsys, "dead-letters", "redrive", ids[1], ids[2], *cli)  # a selection
        assert code == 0 and "2 redriven, 0 skipped" in out
        wait_for(lambda: marked(sqlite_company_db, keys[:3]) == [True] * 3, timeout=60, what="the selection")

        code, out, _ = run_cli(capsys, "dead-letters", "redrive", "--all", "--dry-run", *cli)
        assert code == 0 and "1 would redrive, 1 skipped" in out  # only what is still open
        code, out, _ = run_cli(capsys, "dead-letters", "redrive", "--all", *cli)  # all
        assert code == 0 and "1 redriven, 1 skipped" in out and "fix row JNo=" in out
        wait_for(lambda: all(marked(sqlite_company_db, keys)), timeout=60, what="every redriven payment")

        still_open = letters("--open")
        assert [letter["stage"] for letter in still_open] == ["producer"]  # the Visma row is fixed in Visma, not here
        assert all(not letter["open"] and letter["redrives"][0]["by"] == "ida" for letter in letters("--stage", "consumer"))

        code, out, _ = run_cli(capsys, "dead-letters", "redrive", ids[0], *cli)  # once more: already applied
        assert code == 0 and "1 redriven" in out

        def caught_up() -> bool:
            kafka = settings.kafka
            with KafkaView(kafka) as view:
                return sum(view.pending(kafka.consumer_group, [kafka.topics.payments]).values()) == 0
        wait_for(caught_up, timeout=60, what="the consumers to process the second redrive")

    references = [external_import_reference(1, *k) for k in keys]
    assert [len(control.vouchers_with_reference(SANDBOX_CLIENT_KEY, r)) for r in references] == [1, 1, 1, 1]

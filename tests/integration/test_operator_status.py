"""`vb2po status` on the real stack: per company and invoice client, the last poll, the cursor
lag (payments waiting in Visma), the consumer lag, open dead letters and blocked customers."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.visma_seed import insert_custtr
from tests.builders import payment_row
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.operator_stack import Api, make_settings, operator_settings, run_cli, token_for
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration


def add_customer(db, act_no: int, cust_no: int, blocked: bool) -> None:
    db.execute('INSERT INTO "Actor" ("ActNo", "CustNo", "Nm", "CrSusp", "CrLmt") VALUES (?, ?, ?, ?, ?)',
               [act_no, cust_no, f"Kunde {cust_no} AS", int(blocked), 10000])


def test_status_shows_polls_lags_dead_letters_and_blocked_customers_per_company(
        kafka_bootstrap, sandbox_server, company_db, capsys):
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=30)
    day = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    with VismaDatabase(company_db) as db:
        for act_no, (cust_no, blocked) in enumerate([(10001, True), (10002, False), (10003, True)], start=1):
            add_customer(db, act_no, cust_no, blocked)
        insert_custtr(db, [payment_row(1, 1, ch_dt=day, ch_tmms=ms, vo_dt=day),  # published, not applied (no consumer)
                           payment_row(1, 2, ch_dt=day, ch_tmms=ms, vo_dt=20261032)])  # a bad row: no real date
    # The producer polls once at start, then not for an hour: what is inserted later waits.
    settings = make_settings(operator_settings(kafka_bootstrap, sandbox_server, {1: company_db}, {1: SANDBOX_CLIENT_KEY},
                                               producer={"poll_interval_s": 3600}))
    token = token_for(settings, "ida")
    with running(settings, consumer=False) as services:
        url = services["admin"].url
        api = Api(url, token)
        first = wait_for(lambda: (c := api.get("/v1/status").json()["companies"][0])["last_poll_at"]
                         and c["dead_letters_open"] and c, timeout=60, what="the first poll and its dead letter")
        assert first["cursor_lag"]["waiting"] == 0
        with VismaDatabase(company_db) as db:
            insert_custtr(db, [payment_row(2, 1, ch_dt=day, ch_tmms=ms, vo_dt=day)])

        code, out, err = run_cli(capsys, "status", "--admin-url", url, "--token", token)
        assert code == 0, err
        assert "company 1  invoice clients: client-1" in out
        assert "last poll          " in out and "ago" in out
        assert "1 payment(s) waiting" in out
        assert "dead letters       1 open (invalid_date 1)" in out
        assert "blocked customers  2: 10001, 10003" in out
        assert "lag payments 1, credit-blocks 3" in out  # nothing consumed yet: 1 payment, 3 customers' states

        code, out, _ = run_cli(capsys, "status", "--json", "--admin-url", url, "--token", token)
        status = json.loads(out)
        [company] = status["companies"]
        assert company["cursor_lag"]["waiting"] == 1 and company["cursor_lag"]["lag_s"] >= 25
        assert company["cursor_lag"]["cursor"]["jno"] == 1
        assert company["blocked_customer_nos"] == [10001, 10003] and not company["fenced"]
        assert status["consumer"] == {**status["consumer"], "state": "Dead", "members": 0,
                                      "lag": {"payments": 1, "credit-blocks": 3}}

"""Fetch now, the way an operator does it: `vb2po fetch-now` (and the HTTP API) against a running
producer and consumer, two Visma companies over ODBC, two PowerOffice clients in a sandbox.

The producer's own schedule is an hour here, so only fetch now polls after its first round:
what the operator asked for is exactly what gets published.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from consumer.payments import external_import_reference
from devstack.dataset import DatasetSpec, invoices
from devstack.visma_seed import create_tables, insert_custtr, sqlite_connection_string
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from tests.builders import payment_row
from tests.operator_stack import Api, make_settings, operator_settings, run_cli, token_for
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration

SPECS = {1: DatasetSpec(size=80, seed=11), 2: DatasetSpec(size=80, seed=12)}
CLIENT_KEYS = {1: "fetch-client-a", 2: "fetch-client-b"}


@pytest.fixture(scope="module")
def fetch_sandbox():
    seeds = [ClientSeed(CLIENT_KEYS[n], spec) for n, spec in SPECS.items()]
    with SandboxServer(seeds, SandboxConfig(rate_limit_per_second=None)) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def unpaid():
    """Unpaid invoices per company, handed out once each across this module."""
    return {n: iter([i for i in invoices(spec) if i.balance_before_sync > 0]) for n, spec in SPECS.items()}


@pytest.fixture
def stack(kafka_bootstrap, fetch_sandbox, tmp_path):
    dbs = {}
    for n in SPECS:
        dbs[n] = sqlite_connection_string(tmp_path / f"F000{n}.db")
        with VismaDatabase(dbs[n]) as db:
            create_tables(db)
    settings = make_settings(operator_settings(kafka_bootstrap, fetch_sandbox, dbs, CLIENT_KEYS,
                                               producer={"poll_interval_s": 3600}))
    with running(settings) as services:
        url = services["admin"].url
        tokens = {u: token_for(settings, u) for u in ("ida", "otto", "frida")}
        # The producer polls every company once at start; after that only fetch now does.
        wait_for(lambda: all(c["last_poll_at"] for c in Api(url, tokens["ida"]).get("/v1/status").json()["companies"]),
                 timeout=60, what="the producer's first round")
        yield {"settings": settings, "url": url, "tokens": tokens, "dbs": dbs, "sandbox": fetch_sandbox}


_next_jno = iter(range(5000, 10**6))


def pay(stack, invoice, company_no: int, *, invoice_no: str | None = None, amount: str = "-25.00") -> tuple[int, int]:
    """One payment row in Visma against `invoice` (or another number for the same customer),
    changed a few seconds ago; returns its (JNo, EntNo)."""
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=5)
    day = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    jno = next(_next_jno)
    row = payment_row(jno, 1, ch_dt=day, ch_tmms=ms, vo_dt=day, amount=amount, cust_no=invoice.cust_no,
                      invoice_no=invoice_no or str(invoice.invoice_no))
    with VismaDatabase(stack["dbs"][company_no]) as db:
        insert_custtr(db, [row])
    return jno, 1


def marked(stack, company_no: int, key: tuple[int, int]) -> bool:
    with VismaDatabase(stack["dbs"][company_no]) as db:
        rows = list(db.query('SELECT "Gr4" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', list(key)))
    return rows[0][0] == 1


def vouchers(stack, company_no: int, key: tuple[int, int]) -> int:
    reference = external_import_reference(company_no, *key)
    return len(stack["sandbox"].control.vouchers_with_reference(CLIENT_KEYS[company_no], reference))


def test_fetch_now_for_one_client_publishes_only_its_company_and_waits_until_applied(stack, unpaid, capsys):
    invoice = next(unpaid[1])
    mine = [pay(stack, invoice, 1), pay(stack, invoice, 1)]
    other = pay(stack, next(unpaid[2]), 2)
    code, out, err = run_cli(capsys, "fetch-now", "--client", "client-1", "--wait", "--timeout", "90",
                             "--admin-url", stack["url"], "--token", stack["tokens"]["otto"])
    assert code == 0, out + err
    assert "company 1 (client-1): 2 payment(s) published, 0 bad row(s)" in out
    assert "done: 2/2 applied" in out
    assert "waiting up to" in err and "2/2 applied, 0 dead-lettered, 0 waiting" in err  # the progress
    assert all(marked(stack, 1, k) and vouchers(stack, 1, k) == 1 for k in mine)
    assert not marked(stack, 2, other) and vouchers(stack, 2, other) == 0  # not asked for: not fetched


def test_fetch_now_for_all_clients_publishes_every_company_and_waits_until_applied(stack, unpaid, capsys):
    keys = {n: pay(stack, next(unpaid[n]), n) for n in (1, 2)}
    code, out, err = run_cli(capsys, "fetch-now", "--all", "--wait", "--timeout", "90",
                             "--admin-url", stack["url"], "--token", stack["tokens"]["frida"])
    assert code == 0, out + err
    assert "company 1 (client-1): 1 payment(s) published" in out
    assert "company 2 (client-2): 1 payment(s) published" in out
    assert "done: 2/2 applied" in out
    assert all(marked(stack, n, k) and vouchers(stack, n, k) == 1 for n, k in keys.items())


def test_fetch_now_over_http_reports_counts_and_follows_a_dead_lettered_payment(stack, unpaid, capsys):
    invoice = next(unpaid[1])
    good = pay(stack, invoice, 1)
    pay(stack, invoice, 1, invoice_no="999999")  # PowerOffice knows no such invoice: dead-lettered
    api = Api(stack["url"], stack["tokens"]["otto"])
    started = api.post("/v1/fetch", {"client": "client-1"}).json()
    assert started["published"] == 2 and started["companies"][0]["published"] == 2
    done = wait_for(lambda: (p := api.get(f"/v1/fetch/{started['fetch_id']}").json()["progress"])["done"] and p,
                    timeout=90, what="fetch progress to finish")
    assert (done["applied"], done["dead_lettered"], done["pending"]) == (1, 1, 0)
    assert done["dead_letters"][0]["reason"] == "invoice_unknown"
    assert marked(stack, 1, good)
    # The command says so and fails: not everything it fetched reached PowerOffice.
    pay(stack, invoice, 1, invoice_no="999998")
    code, out, _ = run_cli(capsys, "fetch-now", "--client", "client-1", "--wait", "--timeout", "90",
                           "--admin-url", stack["url"], "--token", stack["tokens"]["otto"])
    assert code == 1 and "dead-lettered: company 1" in out and "invoice_unknown" in out


def test_fetch_now_for_an_unknown_client_is_refused_with_the_known_ones(stack, capsys):
    code, _, err = run_cli(capsys, "fetch-now", "--client", "nope", "--admin-url", stack["url"],
                           "--token", stack["tokens"]["otto"])
    assert code == 1 and "client-1" in err

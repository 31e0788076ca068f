"""Reconcile, the way an operator runs it: `vb2po reconcile` against a Visma company (SQLite and
PostgreSQL over ODBC) and a PowerOffice sandbox both seeded from one dataset, before and after
the sync. Before: every invoice with a payment on or after the lookback date lacks it in
PowerOffice. After: nothing is open, except what the lookback date excludes by design."""
from __future__ import annotations

import csv
import io
import itertools
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest

from devstack.dataset import VOUCHER_TYPE_INVOICE, CustTrRow, DatasetSpec, custtr_rows, invoices
from devstack.visma_seed import insert_custtr, seed_company, sqlite_connection_string
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from tests.operator_stack import make_settings, operator_settings, run_cli, token_for
from tests.services import running, wait_for
from vb2po import metrics
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration

SPEC = DatasetSpec(size=150, seed=23)
CLIENT_KEY = "reconcile-client"
LOOKBACK = date(2026, 1, 1)
LOOKBACK_DT = 20260101
VISMA_ONLY_INVOICE = "999001"
_databases = itertools.count(1)


def expected_before_and_after() -> tuple[dict[str, tuple[str, Decimal]], dict[str, tuple[str, Decimal]], int]:
    """Per invoice number: (kind, PowerOffice minus Visma) before and after the sync; and the
    number that PowerOffice has but Visma will not (the invoice deleted from Visma below)."""
    before_lookback, after_lookback = defaultdict(Decimal), defaultdict(Decimal)
    for row in custtr_rows(SPEC):
        if row.is_payment and row.invo_no:
            (after_lookback if row.vo_dt >= LOOKBACK_DT else before_lookback)[row.invo_no] += -row.am
    before, after = {}, {}
    for number in set(before_lookback) | set(after_lookback):
        old, new = before_lookback[number], after_lookback[number]
        if old + new:
            before[number] = ("payments_missing_in_poweroffice", old + new) if new else ("excluded_by_lookback", old)
        if old:
            after[number] = ("excluded_by_lookback", old)
    removed = next(i for i in invoices(SPEC) if i.paid == 0 and i.balance_before_sync > 0)
    for table in (before, after):
        table[str(removed.invoice_no)] = ("invoice_unknown_in_visma", removed.balance_before_sync)
        table[VISMA_ONLY_INVOICE] = ("invoice_unknown_in_poweroffice", Decimal("-500.00"))
    return before, after, removed.invoice_no


@pytest.fixture
def reconcile_sandbox():
    """A sandbox of its own per run: the sync changes its balances."""
    with SandboxServer([ClientSeed(CLIENT_KEY, SPEC)], SandboxConfig(rate_limit_per_second=None)) as sandbox:
        yield sandbox


@pytest.fixture(params=["sqlite", "postgres"])
def seeded_company(request, tmp_path):
    """The dataset's Visma company, less one invoice, plus one PowerOffice never heard of."""
    if request.param == "sqlite":
        conn = sqlite_connection_string(tmp_path / "F0001.db")
    else:
        conn = request.getfixturevalue("postgres_server").create_database(f"reconcile{next(_databases)}")
    _, _, removed = expected_before_and_after()
    with VismaDatabase(conn) as db:
        seed_company(db, SPEC)
        db.execute('DELETE FROM "CustTr" WHERE "InvoNo" = ?', [str(removed)])
        insert_custtr(db, [CustTrRow(
            jno=900001, entno=1, cust_no=10000, vo_no=1, vo_dt=20260301, vo_tp=VOUCHER_TYPE_INVOICE, txt="Visma only",
            am=Decimal("500.00"), invo_no=VISMA_ONLY_INVOICE, cur="NOK", due_dt=0, cre_dt=20260301, cre_tm=900,
            ch_dt=20260301, ch_tm=900, ch_tmms=900 * 60_000)])
    return conn


def payments_marked(conn: str) -> int:
    with VismaDatabase(conn) as db:
        return list(db.query('SELECT COUNT(*) FROM "CustTr" WHERE "Gr4" = 1'))[0][0]


def found(rows) -> dict[str, tuple[str, Decimal]]:
    return {r["invoice_no"]: (r["kind"], Decimal(r["difference"])) for r in rows}


@pytest.mark.slow
def test_reconcile_finds_the_missing_payments_before_the_sync_and_only_lookback_exclusions_after(
        kafka_bootstrap, reconcile_sandbox, seeded_company, capsys):
    before, after, _ = expected_before_and_after()
    settings = make_settings(operator_settings(kafka_bootstrap, reconcile_sandbox, {1: seeded_company}, {1: CLIENT_KEY},
                                               lookback=LOOKBACK))
    token = token_for(settings, "ida")
    to_apply = sum(1 for r in custtr_rows(SPEC) if r.is_payment and r.invo_no and r.vo_dt >= LOOKBACK_DT)

    with running(settings, consumer=False) as services:  # published, not applied: PowerOffice lacks them all
        cli = ["--admin-url", services["admin"].url, "--token", token]
        code, out, err = run_cli(capsys, "reconcile", "--client", "client-1", "--format", "csv", *cli)
        assert code == 0, err
        assert "asking PowerOffice for invoices" in err  # the progress
        rows = list(csv.DictReader(io.StringIO(out)))
        assert found(rows) == before
        missing = [r for r in rows if r["kind"] == "payments_missing_in_poweroffice"]
        assert all(Decimal(r["unmarked_in_visma"]) > 0 for r in missing)  # not marked in Visma either: not yet synced
        open_before = sum(1 for r in rows if r["open"] == "True")
        assert metrics.RECONCILE_OPEN_DIFFERENCES.labels("client-1", "payments_missing_in_poweroffice")._value.get() \
            == len(missing)

    with running(settings) as services:
        wait_for(lambda: payments_marked(seeded_company) == to_apply, timeout=120, what="every payment applied")
        cli = ["--admin-url", services["admin"].url, "--token", token]
        code, out, err = run_cli(capsys, "reconcile", "--format", "json", *cli)
        assert code == 0, err
        [result] = json.loads(out)["results"]
        assert found(result["differences"]) == after
        assert result["by_kind"]["payments_missing_in_poweroffice"] == 0
        assert result["open_differences"] == 2  # the two invoices only one side knows
        assert result["open_differences"] < open_before
        code, out, _ = run_cli(capsys, "reconcile", "--format", "table", *cli)
        assert code == 0 and "2 open difference(s)" in out and "differ only by payments before the lookback date" in out
    assert metrics.RECONCILE_OPEN_DIFFERENCES.labels("client-1", "payments_missing_in_poweroffice")._value.get() == 0

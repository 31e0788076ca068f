"""One payment, end to end on real parts: Visma row (ODBC) -> producer -> Kafka -> consumer
-> PowerOffice sandbox (balance falls) -> processed marker in the Visma row."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from consumer.payments import external_import_reference
from devstack.stack import LocalClient, settings_dict, to_settings
from devstack.visma_seed import insert_custtr
from tests.builders import payment_row
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase


def marker_of(conn_str: str, jno: int, entno: int):
    with VismaDatabase(conn_str) as db:
        return list(db.query('SELECT "Gr4", "ChDt", "ChTmms" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', [jno, entno]))[0]


def test_one_payment_is_registered_in_poweroffice_and_marked_in_visma(
    kafka_bootstrap, sandbox_server, company_db, fresh_invoice
):
    invoice = fresh_invoice
    paid = Decimal("123.45")
    now = datetime.now(ZoneInfo("Europe/Oslo"))
    today = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    jno = invoice.invoice_no  # a Visma key no other test in this session uses
    row = payment_row(jno, 1, ch_dt=today, ch_tmms=ms, amount=f"-{paid}", invoice_no=str(invoice.invoice_no),
                      cust_no=invoice.cust_no, vo_dt=today)
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [row])
    settings = to_settings(settings_dict(
        bootstrap_servers=kafka_bootstrap, api_url=sandbox_server.api_url, token_url=sandbox_server.token_url,
        application_key=sandbox_server.application_key, subscription_key=sandbox_server.subscription_key,
        clients=[LocalClient("demo", SANDBOX_CLIENT_KEY, 1, company_db)], lookback=date(2026, 1, 1),
        namespace=f"skeleton-{uuid.uuid4().hex[:8]}", poll_interval_s=0.2, idle_poll_interval_s=0.2,
    ))
    control = sandbox_server.control
    reference = external_import_reference(1, jno, 1)

    with running(settings):
        wait_for(lambda: marker_of(company_db, jno, 1)[0] == 1, timeout=90, what="the Visma marker")

    vouchers = control.vouchers_with_reference(SANDBOX_CLIENT_KEY, reference)
    assert len(vouchers) == 1
    balance = wait_for(lambda: _balance(sandbox_server, invoice.invoice_no), what="invoice balance")
    assert balance == invoice.balance_before_sync - paid
    marker, ch_dt, ch_tmms = marker_of(company_db, jno, 1)
    assert (ch_dt, ch_tmms) == (row.ch_dt, row.ch_tmms)  # the marker write left the change columns alone


def _balance(sandbox_server, invoice_no: int) -> Decimal:
    from vb2po.poweroffice.client import PowerOfficeClient

    with PowerOfficeClient(
        api_url=sandbox_server.api_url, token_url=sandbox_server.token_url,
        application_key=sandbox_server.application_key, client_key=SANDBOX_CLIENT_KEY,
        subscription_key=sandbox_server.subscription_key,
    ) as client:
        return client.get_invoices([invoice_no])[0].balance

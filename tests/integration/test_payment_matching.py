"""Posting only what matches, on the real stack (Kafka, SQLite over ODBC, the sandbox, producer and
consumer): the sandbox accepts whatever the contract does not say it refuses, so each case shows
vb2po's own check: the PowerOffice balance, the vouchers, the Visma marker, the dead letter."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from admin.actions.reconcile import reconcile_client
from devstack.dataset import DatasetSpec, customers
from devstack.visma_seed import insert_custtr
from tests.builders import payment_row
from tests.fixtures.world import CLIENT_KEY
from tests.kafka_reading import read_committed
from tests.services import running, wait_for
from vb2po.visma.clock import yyyymmdd
from vb2po.visma.db import VismaDatabase

SPEC = DatasetSpec(size=12, seed=31)
EUR = 978  # ISO 4217 numeric: this company database has no currency register (Cur table)


def new_invoice(world, invoice_no: int, customer: int, total: str = "500.00", **extra) -> int:
    """An invoice only PowerOffice holds (the dataset's own invoices all receive payments in the run)."""
    world.sandbox.control.add_invoice(CLIENT_KEY, invoice_no, customer, total, **extra)
    return invoice_no


def row(jno: int, invoice_no: int | str, customer: int, amount: str = "-100.00", entno: int = 1):
    return payment_row(jno, entno, invoice_no=str(invoice_no), cust_no=customer, amount=amount, ch_tmms=40_000_000 + jno)


def add_rows(world, rows, currency: dict | None = None) -> None:
    with VismaDatabase(world.connection_string) as db:
        insert_custtr(db, rows)
        for (jno, entno), (cur, cur_am) in (currency or {}).items():
            db.execute('UPDATE "CustTr" SET "Cur" = ?, "CurAm" = ? WHERE "JNo" = ? AND "EntNo" = ?', [cur, cur_am, jno, entno])


def marked(world, jno: int, entno: int = 1) -> bool:
    with VismaDatabase(world.connection_string) as db:
        return list(db.query('SELECT "Gr4" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', [jno, entno]))[0][0] == 1


def letters(world) -> dict[str, dict]:
    kafka = world.settings.kafka
    return {json.loads(r.value)["source_key"]: json.loads(r.value)
            for r in read_committed(kafka.bootstrap_servers, kafka.topics.dead_letters)}


def vouchers_for(world, jno: int, entno: int = 1) -> list[dict]:
    return world.sandbox.control.vouchers_with_reference(CLIENT_KEY, f"VB2PO-F0001-J{jno}-E{entno}")


def balance(world, invoice_no: int) -> Decimal:
    with world.client() as client:
        return client.get_invoices([invoice_no])[0].balance


def settle(world, *, dead: list[int] = (), done: list[int] = ()) -> dict[str, dict]:
    """Run the stack until the dataset's payments and `done` are marked and `dead` are dead-lettered."""
    with running(world.settings):
        wait_for(lambda: world.markers() >= world.expected_payments + len(done), timeout=120, what="payments marked")
        wait_for(lambda: all(f"JNo={j};EntNo=1" in letters(world) for j in dead), timeout=60, what="dead letters")
    return letters(world)


def test_a_payment_for_an_invoice_poweroffice_does_not_know_is_dead_lettered_not_posted(make_world):
    world = make_world(SPEC)
    customer = customers(SPEC)[0].cust_no
    add_rows(world, [row(9001, 14999, customer)])
    found = settle(world, dead=[9001])
    letter = found["JNo=9001;EntNo=1"]
    assert letter["reason"] == "invoice_unknown"
    assert "invoice 14999 is unknown in PowerOffice client world" in letter["error"]
    assert vouchers_for(world, 9001) == [] and not marked(world, 9001)
    assert len(world.vouchers()) == world.expected_payments


def test_a_payment_on_another_customers_invoice_is_dead_lettered(make_world):
    world = make_world(SPEC)
    owner, other = customers(SPEC)[0].cust_no, customers(SPEC)[1].cust_no
    invoice = new_invoice(world, 600004, owner)
    add_rows(world, [row(9002, invoice, other)])
    found = settle(world, dead=[9002])
    assert found["JNo=9002;EntNo=1"]["reason"] == "invoice_of_another_customer"
    assert "belongs to customer" in found["JNo=9002;EntNo=1"]["error"]
    assert vouchers_for(world, 9002) == [] and not marked(world, 9002)
    assert balance(world, invoice) == Decimal("500.00")


def test_a_payment_on_a_reversed_invoice_is_dead_lettered(make_world):
    world = make_world(SPEC)
    customer = customers(SPEC)[0].cust_no
    invoice = new_invoice(world, 600001, customer, is_reversed=True)
    add_rows(world, [row(9003, invoice, customer)])
    found = settle(world, dead=[9003])
    assert found["JNo=9003;EntNo=1"]["reason"] == "invoice_reversed"
    assert vouchers_for(world, 9003) == [] and not marked(world, 9003)
    assert balance(world, invoice) == Decimal("500.00")


def test_a_eur_payment_on_a_eur_invoice_is_posted_in_eur(make_world):
    world = make_world(SPEC)
    customer = customers(SPEC)[0].cust_no
    world.sandbox.control.add_invoice(CLIENT_KEY, 500001, customer, "100.00", currency_code="EUR", exchange_rate="11.5")
    add_rows(world, [row(9004, 500001, customer, amount="-1150.00")], currency={(9004, 1): (EUR, Decimal("-100.00"))})
    settle(world, done=[9004])
    (voucher,) = vouchers_for(world, 9004)
    assert voucher["CurrencyCode"] == "EUR"
    assert [Decimal(str(line["CurrencyAmount"])) for line in voucher["VoucherLines"]] == [Decimal("100"), Decimal("-100")]
    assert {Decimal(str(line["CurrencyExchangeRate"])) for line in voucher["VoucherLines"]} == {Decimal("11.5")}
    assert balance(world, 500001) == 0 and marked(world, 9004)


def test_a_eur_payment_on_a_nok_invoice_is_dead_lettered(make_world):
    world = make_world(SPEC)
    customer = customers(SPEC)[0].cust_no
    invoice = new_invoice(world, 600002, customer)
    add_rows(world, [row(9005, invoice, customer, amount="-115.00")], currency={(9005, 1): (EUR, Decimal("-10.00"))})
    found = settle(world, dead=[9005])
    letter = found["JNo=9005;EntNo=1"]
    assert letter["reason"] == "currency_mismatch" and "in NOK" in letter["error"] and "in EUR" in letter["error"]
    assert vouchers_for(world, 9005) == [] and not marked(world, 9005)
    assert balance(world, invoice) == Decimal("500.00")


@pytest.mark.parametrize("mode", ["dead_letter", "on_account"])
def test_a_payment_that_matches_no_invoice_is_dead_lettered_or_posted_on_account(make_world, mode):
    world = make_world(SPEC, unmatched_payments=mode)
    customer = customers(SPEC)[1].cust_no
    add_rows(world, [row(9006, "", customer, amount="-250.00"), row(9007, 14998, customer, amount="-75.00")])
    if mode == "dead_letter":
        found = settle(world, dead=[9006, 9007])
        assert found["JNo=9006;EntNo=1"]["reason"] == "missing_invoice_no"
        assert found["JNo=9007;EntNo=1"]["reason"] == "invoice_unknown"
        assert vouchers_for(world, 9006) == vouchers_for(world, 9007) == []
        assert not marked(world, 9006) and not marked(world, 9007)
        return
    found = settle(world, done=[9006, 9007])
    assert "JNo=9006;EntNo=1" not in found and "JNo=9007;EntNo=1" not in found
    for jno in (9006, 9007):
        (voucher,) = vouchers_for(world, jno)
        assert all(line["InvoiceNo"] is None for line in voucher["VoucherLines"]) and marked(world, jno)
    report = reconcile_client(world.settings, world.settings.client("world"), lambda *_: None)
    on_account = {item["reference"]: Decimal(item["balance"]) for item in report["on_account"]}
    assert on_account == {"VB2PO-F0001-J9006-E1": Decimal("-250.00"), "VB2PO-F0001-J9007-E1": Decimal("-75.00")}


def test_a_reversed_payment_is_undone_by_a_voucher_of_its_own(make_world):
    world = make_world(SPEC)
    customer = customers(SPEC)[1].cust_no
    invoice = new_invoice(world, 600003, customer, total="1000.00")
    add_rows(world, [row(9008, invoice, customer, amount="-40.00")])
    settle(world, done=[9008])
    assert balance(world, invoice) == Decimal("960.00")
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=5)  # changed now: the poll finds it
    reversal = payment_row(9009, 1, invoice_no=str(invoice), cust_no=customer, amount="40.00", ch_dt=yyyymmdd(now),
                           ch_tmms=(now.hour * 3600 + now.minute * 60 + now.second) * 1000, vo_dt=20260315)
    add_rows(world, [reversal])
    settle(world, done=[9008, 9009])
    assert len(vouchers_for(world, 9008)) == len(vouchers_for(world, 9009)) == 1
    assert balance(world, invoice) == Decimal("1000.00") and marked(world, 9008) and marked(world, 9009)


def test_reconcile_reads_only_documented_fields_and_names_the_currency(make_world):
    world = make_world(SPEC)
    settle(world)
    customer = customers(SPEC)[0].cust_no
    world.sandbox.control.add_invoice(CLIENT_KEY, 500002, customer, "100.00", currency_code="EUR", exchange_rate="11")
    add_rows(world, [replace(row(9010, 500002, customer, amount="1100.00"), vo_tp=1)],  # the invoice, in Visma too,
             currency={(9010, 1): (EUR, Decimal("80.00"))})  # with a different amount: a difference in EUR
    world.sandbox.control.set_documented_fields_only(True)
    report = reconcile_client(world.settings, world.settings.client("world"), lambda *_: None, today=date(2026, 11, 27))
    differences = {d["invoice_no"]: d for d in report["differences"]}
    eur = differences["500002"]
    assert (eur["currency"], Decimal(eur["visma_outstanding"]), Decimal(eur["poweroffice_balance"])) == \
        ("EUR", Decimal("80.00"), Decimal("100.00"))
    assert report["open_differences"] >= 1

"""Reconcile's classification of invoice differences, and its CSV/table output. Pure."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

from admin.actions.reconcile import (
    EXCLUDED_BY_LOOKBACK,
    MISSING_IN_POWEROFFICE,
    MISSING_IN_VISMA,
    UNKNOWN_IN_POWEROFFICE,
    UNKNOWN_IN_VISMA,
    PowerOfficeInvoice,
    compare,
)
from admin.actions.visma_read import VismaInvoice
from admin.cli import render

D = Decimal


def visma(no: str, outstanding: str, before: str = "0.00", unmarked: str = "0.00") -> VismaInvoice:
    return VismaInvoice(no, 10000, D(outstanding), D(before), D(unmarked), 2)


def po(no: int, balance: str) -> PowerOfficeInvoice:
    return PowerOfficeInvoice(no, 10000, D(balance))


def kinds(differences) -> dict[str, str]:
    return {d.invoice_no: d.kind for d in differences}


def test_equal_outstanding_amounts_are_no_difference():
    compared, differences = compare("c", [visma("1", "100.00")], {1: po(1, "100.00")})
    assert (compared, differences) == (1, [])


def test_poweroffice_showing_more_outstanding_lacks_a_visma_payment():
    _, differences = compare("c", [visma("1", "60.00", unmarked="40.00")], {1: po(1, "100.00")})
    [d] = differences
    assert (d.kind, d.difference, d.unmarked_in_visma, d.open) == (MISSING_IN_POWEROFFICE, D("40.00"), D("40.00"), True)


def test_poweroffice_showing_less_outstanding_has_a_payment_visma_lacks():
    _, differences = compare("c", [visma("1", "100.00")], {1: po(1, "75.00")})
    assert kinds(differences) == {"1": MISSING_IN_VISMA}
    assert differences[0].difference == D("-25.00")


def test_a_difference_of_exactly_the_payments_before_the_lookback_date_is_expected():
    _, differences = compare("c", [visma("1", "0.00", before="250.00")], {1: po(1, "250.00")})
    [d] = differences
    assert (d.kind, d.open) == (EXCLUDED_BY_LOOKBACK, False)


def test_invoices_unknown_on_either_side_are_reported_with_their_amount():
    _, differences = compare("c", [visma("1", "10.00"), visma("A-7", "5.00"), visma("3", "0.00")],
                             {}, poweroffice_open=[po(2, "99.00")])
    assert kinds(differences) == {"1": UNKNOWN_IN_POWEROFFICE, "A-7": UNKNOWN_IN_POWEROFFICE, "2": UNKNOWN_IN_VISMA}


def test_a_settled_visma_invoice_poweroffice_never_had_is_not_a_difference():
    _, differences = compare("c", [visma("3", "0.00")], {})
    assert differences == []


def test_reconcile_csv_has_one_row_per_difference_with_money_as_text():
    _, differences = compare("c", [visma("1", "60.00")], {1: po(1, "100.00")})
    job = {"results": [{"client": "c", "company_no": 1, "compared": 1, "matching": 0, "open_differences": 1,
                        "by_kind": {MISSING_IN_POWEROFFICE: 1}, "differences": [d.as_dict() for d in differences]}]}
    rows = list(csv.DictReader(io.StringIO(render.reconcile_csv(job))))
    assert [(r["invoice_no"], r["kind"], r["difference"]) for r in rows] == [("1", MISSING_IN_POWEROFFICE, "40.00")]
    assert "1 open difference(s)" in render.reconcile_table(job)

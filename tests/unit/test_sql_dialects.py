"""The generated SQL parses in each dialect, and settings never reach SQL unchecked."""
import pytest
import sqlglot

from vb2po.visma.dialect import DialectName, dialect_for, require_plain_identifier
from vb2po.visma.identifiers import ColumnNotUsable, checked_marker_column
from vb2po.visma.queries import (
    PaymentSelection,
    Position,
    currency_register,
    customer_by_act_no,
    customers_page,
    mark_payment,
    payment_poll_index,
    payment_rows_by_keys,
    payment_rows_of_invoice,
    pending_payments_page,
    unmarked_payments_page,
)
from vb2po.visma.tables import ACTOR, CUR, CUSTTR

SELECTION = PaymentSelection(marker_column="Gr4", marked_value=1, time_column="ChTmms", voucher_types=(3, 4),
                             lookback_dt=20260101, reversal_types=(3,), currency_column="Cur", currency_amount_column="CurAm")
WITHOUT_CURRENCY = PaymentSelection(marker_column="Inf2", marked_value="x", time_column="ChTm", voucher_types=(3,),
                                    lookback_dt=20260101)
SQLGLOT_NAME = {DialectName.TSQL: "tsql", DialectName.POSTGRESQL: "postgres", DialectName.SQLITE: "sqlite"}


def all_statements(d):
    for sel in (SELECTION, WITHOUT_CURRENCY):
        for keys_only in (False, True):
            yield pending_payments_page(d, sel, None, (20261127, 1000), 500, keys_only=keys_only)
            yield pending_payments_page(d, sel, Position(20260101, 5, 1, 2), (20261127, 1000), 500, keys_only=keys_only)
            yield unmarked_payments_page(d, sel, (4, 5), 500, keys_only=keys_only)
        yield payment_rows_by_keys(d, sel, [(4, 5), (4, 6), (7, 1)])
        yield payment_rows_of_invoice(d, sel, 10000, "100001")
    yield mark_payment(d, "Gr4", 1, [(4, 5)])
    yield mark_payment(d, "Gr4", 1, [(4, 5), (4, 6)])
    yield customers_page(d, 10, 100)
    yield customers_page(d, 10, 100, keys_only=True)
    yield customers_page(d, None, 100, blocked_only=True)
    yield customers_page(d, 10, 100, keys_only=True, customer_nos=[10001, 10002, 10003])
    yield customer_by_act_no(d, 7)
    yield currency_register(d), []
    yield d.create_table(CUSTTR), []
    yield d.create_table(ACTOR), []
    yield d.create_table(CUR), []
    yield payment_poll_index(d, SELECTION), []


@pytest.mark.parametrize("name", list(DialectName))
def test_every_generated_statement_parses_in_its_dialect(name):
    d = dialect_for(name)
    for sql, params in all_statements(d):
        parsed = sqlglot.parse_one(sql, read=SQLGLOT_NAME[name])
        assert parsed is not None
        assert sql.count("?") == len(params), sql


def test_tsql_uses_top_and_dbo_schema():
    sql, _ = pending_payments_page(dialect_for("tsql"), SELECTION, None, (20261127, 0), 250)
    tree = sqlglot.parse_one(sql, read="tsql")
    assert tree.args.get("limit") is not None or "TOP (250)" in sql
    assert "[dbo].[CustTr]" in sql
    assert "ORDER BY [ChDt], [ChTmms], [JNo], [EntNo]" in sql


def test_marker_update_never_touches_change_columns_and_only_hits_unmarked_rows():
    sql, params = mark_payment(dialect_for("tsql"), "Gr4", 1, [(7, 8)])
    update = sqlglot.parse_one(sql, read="tsql")
    assigned = [e.this.name for e in update.args["expressions"]]
    assert assigned == ["Gr4"]
    assert "[Gr4] IS NULL OR [Gr4] <> ?" in sql
    assert params == [1, 7, 8, 1]


@pytest.mark.parametrize("bad", ["Gr4; DROP TABLE CustTr", "Gr4 --", "[Gr4]", "", "1abc", "Gr 4", 'Gr4"'])
def test_identifiers_that_are_not_plain_are_refused(bad):
    with pytest.raises(ValueError):
        require_plain_identifier(bad)


def test_marker_column_must_be_a_free_field_that_exists_in_the_live_table():
    real = [c.name for c in CUSTTR.columns]
    assert checked_marker_column("gr4", real) == "Gr4"  # Visma's own spelling is used
    with pytest.raises(ColumnNotUsable, match="does not exist"):
        checked_marker_column("Gr9", real)
    for forbidden in ("ChDt", "ChTm", "JNo", "EntNo", "DueDt", "Cur", "CurAm", "Am", "InvoNo", "VoTp", "Txt", "x; DROP"):
        with pytest.raises(ColumnNotUsable, match="not one of Visma's free fields"):
            checked_marker_column(forbidden, real)


def test_the_payment_rule_selects_payments_and_reversals_of_the_configured_types():
    sql, params = unmarked_payments_page(dialect_for("postgresql"), SELECTION, None, 10)
    assert '("Am" < 0 AND "VoTp" IN (?, ?)) OR ("Am" > 0 AND "VoTp" IN (?))' in sql
    assert params[:3] == [3, 4, 3]
    sql, _ = unmarked_payments_page(dialect_for("postgresql"), WITHOUT_CURRENCY, None, 10)
    assert '"Am" > 0' not in sql and "NULL, NULL" in sql

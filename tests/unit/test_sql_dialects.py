"""The generated SQL parses in each dialect, and settings never reach SQL unchecked."""
import pytest
import sqlglot

from vb2po.visma.dialect import DialectName, dialect_for, require_plain_identifier
from vb2po.visma.identifiers import ColumnNotUsable, checked_marker_column
from vb2po.visma.queries import (
    PaymentSelection, Position, customers_page, mark_payment, marker_value, marker_values, payment_poll_index,
    pending_payments_page, unmarked_payments_page,
)
from vb2po.visma.tables import ACTOR, CUSTTR

SELECTION = PaymentSelection(marker_column="Gr4", marked_value=1, time_column="ChTmms", voucher_types=(3, 4), lookback_dt=20260101)
SQLGLOT_NAME = {DialectName.TSQL: "tsql", DialectName.POSTGRESQL: "postgres", DialectName.SQLITE: "sqlite"}


def all_statements(d):
    yield pending_payments_page(d, SELECTION, None, (20261127, 1000), 500)
    yield pending_payments_page(d, SELECTION, Position(20260101, 5, 1, 2), (20261127, 1000), 500)
    yield unmarked_payments_page(d, SELECTION, (4, 5), 500)
    yield mark_payment(d, "Gr4", 1, 4, 5)
    yield marker_value(d, "Gr4", 4, 5)
    yield marker_values(d, "Gr4", [(4, 5), (4, 6), (7, 1)])
    yield customers_page(d, 10, 100)
    yield d.create_table(CUSTTR), []
    yield d.create_table(ACTOR), []
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
    sql, params = mark_payment(dialect_for("tsql"), "Gr4", 1, 7, 8)
    update = sqlglot.parse_one(sql, read="tsql")
    assigned = [e.this.name for e in update.args["expressions"]]
    assert assigned == ["Gr4"]
    assert "[Gr4] IS NULL OR [Gr4] <> ?" in sql
    assert params == [1, 7, 8, 1]


@pytest.mark.parametrize("bad", ["Gr4; DROP TABLE CustTr", "Gr4 --", "[Gr4]", "", "1abc", "Gr 4", 'Gr4"'])
def test_identifiers_that_are_not_plain_are_refused(bad):
    with pytest.raises(ValueError):
        require_plain_identifier(bad)


def test_marker_column_must_exist_and_must_not_be_a_key_or_change_column():
    real = [c.name for c in CUSTTR.columns]
    assert checked_marker_column("gr4", real) == "Gr4"  # the table's own spelling is used
    with pytest.raises(ColumnNotUsable, match="does not exist"):
        checked_marker_column("Gr9", real)
    for forbidden in ("ChDt", "ChTm", "JNo", "EntNo"):
        with pytest.raises(ColumnNotUsable, match="key or change column"):
            checked_marker_column(forbidden, real)

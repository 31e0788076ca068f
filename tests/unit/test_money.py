from decimal import Decimal

import pytest

from vb2po.visma.money import BadAmount, to_money


@pytest.mark.parametrize(
    "raw, expected",
    [
        (Decimal("-46976.910000"), Decimal("-46976.91")),  # PostgreSQL / SQL Server NUMERIC(28,6)
        ("-46976.91", Decimal("-46976.91")),  # SQLite ODBC returns DECIMAL as text
        (0.1, Decimal("0.10")),  # a float is read through its shortest repr, not binary
        (-12, Decimal("-12.00")),
        (Decimal("1.234567"), Decimal("1.234567")),  # sub-cent precision is kept, not rounded
    ],
)
def test_amounts_from_any_driver_become_exact_decimals(raw, expected):
    amount = to_money(raw)
    assert isinstance(amount, Decimal)
    assert amount == expected and str(amount) == str(expected)


@pytest.mark.parametrize("raw", [None, "", "abc", float("nan"), "Infinity", True, object()])
def test_unreadable_amounts_are_refused(raw):
    with pytest.raises(BadAmount):
        to_money(raw)

"""Opening one Visma company: the database, its checked column names, the payment rule and the
currency book. Shared by the producer (polling), the consumer (reading a row again before it posts)
and the operator actions."""
from __future__ import annotations

from dataclasses import dataclass

from vb2po.settings import CompanySettings, Settings
from vb2po.visma.clock import yyyymmdd
from vb2po.visma.db import VismaDatabase
from vb2po.visma.identifiers import ColumnNotUsable, change_time_column, checked_column, checked_marker_column
from vb2po.visma.payments import CurrencyBook, PaymentRule, read_register
from vb2po.visma.queries import PaymentSelection, currency_register


@dataclass
class CompanySource:
    company: CompanySettings
    db: VismaDatabase
    selection: PaymentSelection
    rule: PaymentRule
    currencies: CurrencyBook


def currency_columns(settings: Settings, columns: list[str]) -> tuple[str | None, str | None]:
    """The row's currency number and amount columns, or (None, None) where CustTr has neither
    (every row is then in the company currency). One without the other cannot be read safely."""
    wanted = settings.currency
    present = {name: name.lower() in {c.lower() for c in columns} for name in (wanted.number_column, wanted.amount_column)}
    if not any(present.values()):
        return None, None
    if not all(present.values()):
        missing = [name for name, there in present.items() if not there]
        raise ColumnNotUsable(f"CustTr has {' but not '.join(sorted(present, key=lambda n: not present[n]))}: "
                              f"a foreign-currency payment cannot be read without both (currency.number_column, "
                              f"currency.amount_column; missing {missing[0]})")
    return checked_column(wanted.number_column, columns), checked_column(wanted.amount_column, columns)


def open_company(settings: Settings, company: CompanySettings, *, polling: bool = False) -> CompanySource:
    """Connect and check the configured columns against the live CustTr table. `polling`: for
    the producer, which only reads, the same statements again and again, from one thread at a
    time (autocommit, kept statements, one connection: see `VismaDatabase`)."""
    db = VismaDatabase(company.odbc.get_secret_value(), company.dialect, autocommit=polling, one_connection=polling)
    columns = db.column_names("CustTr")
    marker = checked_marker_column(settings.marker.field, columns)
    currency_column, currency_amount_column = currency_columns(settings, columns)
    rule = settings.payment_rule
    selection = PaymentSelection(
        marker_column=marker,
        marked_value=settings.marker.value,
        time_column=change_time_column(columns),
        voucher_types=tuple(rule.voucher_types),
        lookback_dt=yyyymmdd(settings.lookback_date),
        reversal_types=tuple(rule.reversal_types),
        currency_column=currency_column,
        currency_amount_column=currency_amount_column,
    )
    register = read_register(db.query(currency_register(db.dialect))) if db.column_names("Cur") else None
    currencies = CurrencyBook(company.currency, dict(settings.currency.codes), register)
    return CompanySource(company, db, selection,
                         PaymentRule(tuple(rule.voucher_types), tuple(rule.reversal_types), settings.lookback_date),
                         currencies)

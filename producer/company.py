"""Opening one Visma company for polling: the database plus its checked column names."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from vb2po.settings import CompanySettings, Settings
from vb2po.visma.db import VismaDatabase
from vb2po.visma.identifiers import change_time_column, checked_marker_column
from vb2po.visma.queries import PaymentSelection


@dataclass
class CompanySource:
    company: CompanySettings
    db: VismaDatabase
    selection: PaymentSelection


def yyyymmdd(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def open_company(settings: Settings, company: CompanySettings) -> CompanySource:
    """Connect and check the configured marker column against the live CustTr table."""
    db = VismaDatabase(company.odbc.get_secret_value(), company.dialect)
    columns = db.column_names("CustTr")
    selection = PaymentSelection(
        marker_column=checked_marker_column(settings.marker.field, columns),
        marked_value=settings.marker.value,
        time_column=change_time_column(columns),
        voucher_types=tuple(settings.payment_rule.voucher_types),
        lookback_dt=yyyymmdd(settings.lookback_date),
    )
    return CompanySource(company, db, selection)

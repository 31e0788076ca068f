"""The checks of an event that need the settings: the rest is in the event models (`schemas`).

An event may come from a replay, an operator's redrive, an older version or a hostile writer.
Before anything is looked up or posted, the consumer asks here whether the company is one it
serves, whether the currency is one that company can hold, and whether the voucher date is one
vb2po transfers. Each failed check is a terminal error with a reason a person understands.
"""
from __future__ import annotations

from datetime import date, timedelta

from schemas.events import CreditBlockEvent, PaymentEvent
from vb2po.errors import TerminalError
from vb2po.settings import Settings

FUTURE_VOUCHER_DAYS = 366


def check_in_context(event: PaymentEvent | CreditBlockEvent, settings: Settings, today: date) -> None:
    company_no = event.payload.company_no
    companies = {c.company_no: c for c in settings.companies}
    company = companies.get(company_no)
    if company is None or not settings.clients_of_company(company_no):
        raise TerminalError(f"no invoice client is configured for Visma company {company_no}",
                            reason="unknown_invoice_client")
    if isinstance(event, CreditBlockEvent):
        return
    p = event.payload
    if p.company_currency is None and p.currency != company.currency:
        raise TerminalError(f"the payment is in {p.currency}, Visma company {company_no} keeps {company.currency}, and "
                            f"the event gives no {company.currency} amount", reason="currency_not_allowed")
    if p.company_currency is not None and p.company_currency != company.currency:
        raise TerminalError(f"the event gives a {p.company_currency} amount; Visma company {company_no} keeps "
                            f"{company.currency}", reason="currency_not_allowed")
    if p.voucher_date < settings.lookback_date:
        raise TerminalError(f"voucher date {p.voucher_date} is before the lookback date {settings.lookback_date}: "
                            "vb2po does not transfer it", reason="before_lookback")
    if p.voucher_date > today + timedelta(days=FUTURE_VOUCHER_DAYS):
        raise TerminalError(f"voucher date {p.voucher_date} is more than a year ahead", reason="invalid_date")

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


class EventContext:
    """What the checks need from the settings, worked out once (they run for every consumed event,
    a replay's included)."""

    def __init__(self, settings: Settings):
        self.currency_of = {c.company_no: c.currency for c in settings.companies
                            if settings.clients_of_company(c.company_no)}  # the companies vb2po serves
        self.lookback = settings.lookback_date

    def check(self, event: PaymentEvent | CreditBlockEvent, today: date) -> None:
        company_no = event.payload.company_no
        currency = self.currency_of.get(company_no)
        if currency is None:
            raise TerminalError(f"no invoice client is configured for Visma company {company_no}",
                                reason="unknown_invoice_client")
        if isinstance(event, CreditBlockEvent):
            return
        p = event.payload
        if p.company_currency is None and p.currency != currency:
            raise TerminalError(f"the payment is in {p.currency}, Visma company {company_no} keeps {currency}, and "
                                f"the event gives no {currency} amount", reason="currency_not_allowed")
        if p.company_currency is not None and p.company_currency != currency:
            raise TerminalError(f"the event gives a {p.company_currency} amount; Visma company {company_no} keeps "
                                f"{currency}", reason="currency_not_allowed")
        if p.voucher_date < self.lookback:
            raise TerminalError(f"voucher date {p.voucher_date} is before the lookback date {self.lookback}: "
                                "vb2po does not transfer it", reason="before_lookback")
        if p.voucher_date > today + timedelta(days=FUTURE_VOUCHER_DAYS):
            raise TerminalError(f"voucher date {p.voucher_date} is more than a year ahead", reason="invalid_date")

"""Which invoice client (PowerOffice client key, bank account) a Visma company's events go to."""
from __future__ import annotations

from dataclasses import dataclass

from vb2po.errors import TerminalError
from vb2po.settings import InvoiceClientSettings, Settings


@dataclass(frozen=True)
class Route:
    company_no: int
    client: InvoiceClientSettings


def routes_by_company(settings: Settings) -> dict[int, Route]:
    routes: dict[int, Route] = {}
    for client in settings.invoice_clients:
        company_no = settings.company_of(client)
        if company_no in routes:
            raise ValueError(
                f"invoice clients {routes[company_no].client.name!r} and {client.name!r} both map to Visma "
                f"company {company_no}: a payment could not be routed; give each its own company_no"
            )
        routes[company_no] = Route(company_no, client)
    return routes


def route_for(routes: dict[int, Route], company_no: int) -> Route:
    try:
        return routes[company_no]
    except KeyError:
        raise TerminalError(
            f"no invoice client is configured for Visma company {company_no}", reason="unknown_invoice_client"
        ) from None

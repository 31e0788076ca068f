"""Control routes for tests and the demo (/_sandbox/...): not PowerOffice, no keys, no faults.

Bodies and answers use snake_case so they are never mistaken for PowerOffice's shapes.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sandbox.faults import FaultSettings
from sandbox.ledger import ClientLedger
from sandbox.problems import NotFound
from sandbox.state import SandboxState
from sandbox.wire import dumps, invoice_dto, project_dto, voucher_dto


class SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_limit_per_second: int | None = Field(None, ge=1, description="null disables the limit")
    token_lifetime_seconds: int | None = Field(None, ge=1)
    unique_references: bool | None = Field(None, description="refuse a second voucher with the same reference")
    documented_fields_only: bool | None = Field(None, description="answer only the documented fields")


class LockDateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lock_date: date | None


class NewInvoice(BaseModel):
    """An outgoing invoice to add (tests: foreign currency, reversed invoices)."""

    model_config = ConfigDict(extra="forbid")

    invoice_no: int = Field(ge=1)
    customer_no: int
    total_amount: Decimal = Field(gt=0)
    currency_code: str = Field("NOK", pattern=r"^[A-Z]{3}$")
    exchange_rate: Decimal = Field(Decimal(1), gt=0)
    voucher_date: date = date(2026, 1, 15)
    is_reversed: bool = False


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_no: int
    name: str = "Nytt prosjekt"
    deny_time_tracking: bool = False


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json")


def control_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")

    def ledger(client_key: str) -> ClientLedger:
        if client_key not in state.ledgers:
            raise NotFound(f"No client with key {client_key!r}; known: {sorted(state.ledgers)}.")
        return state.ledgers[client_key]

    def settings() -> dict[str, Any]:
        return {"rate_limit_per_second": state.limiter.limit, "token_lifetime_seconds": state.tokens.lifetime_s,
                "unique_references": state.unique_references, "documented_fields_only": state.documented_fields_only}

    @router.get("/health")
    async def health() -> Response:
        return _json({"ok": True})

    @router.get("/summary")
    async def summary() -> Response:
        clients = {}
        for key, led in state.ledgers.items():
            s = led.summary()
            clients[key] = {
                "customers": s.customers, "projects": s.projects, "invoices": s.invoices,
                "unpaid_invoices": s.unpaid_invoices, "vouchers": s.vouchers,
                "invoice_balance_sum": str(s.invoice_balance_sum),
                "open_entry_balance_sum": str(s.open_entry_balance_sum),
                "lock_date": s.lock_date, "account_ids": {str(no): i for no, i in sorted(s.accounts.items())},
            }
        return _json({"clients": clients, "settings": settings(), "faults": state.faults.settings.model_dump()})

    @router.get("/clients/{client_key}/vouchers")
    async def vouchers(client_key: str) -> Response:
        return _json([voucher_dto(v) for v in ledger(client_key).vouchers()])

    @router.post("/clients/{client_key}/lock-date")
    async def set_lock_date(client_key: str, update: LockDateUpdate) -> Response:
        ledger(client_key).set_lock_date(update.lock_date)
        return _json({"lock_date": update.lock_date})

    @router.post("/clients/{client_key}/invoices")
    async def add_invoice(client_key: str, new: NewInvoice) -> Response:
        invoice = ledger(client_key).add_new_invoice(
            new.invoice_no, new.customer_no, new.total_amount, currency_code=new.currency_code,
            exchange_rate=new.exchange_rate, voucher_date=new.voucher_date, is_reversed=new.is_reversed)
        return _json(invoice_dto(invoice), status_code=201)

    @router.post("/clients/{client_key}/invoices/{invoice_no}/reverse")
    async def reverse_invoice(client_key: str, invoice_no: int) -> Response:
        return _json(invoice_dto(ledger(client_key).reverse_invoice(invoice_no)))

    @router.post("/clients/{client_key}/projects")
    async def add_project(client_key: str, new: NewProject) -> Response:
        project = ledger(client_key).add_project(new.customer_no, new.name, deny_time_tracking=new.deny_time_tracking)
        return _json(project_dto(project), status_code=201)

    @router.get("/faults")
    async def get_faults() -> Response:
        return _json(state.faults.settings.model_dump())

    @router.put("/faults")
    @router.post("/faults")
    async def set_faults(faults: FaultSettings) -> Response:
        state.faults.configure(faults)
        return _json(faults.model_dump())

    @router.delete("/faults")
    async def clear_faults() -> Response:
        state.faults.configure(FaultSettings())
        return _json(state.faults.settings.model_dump())

    @router.get("/settings")
    async def get_settings() -> Response:
        return _json(settings())

    @router.put("/settings")
    async def put_settings(update: SettingsUpdate) -> Response:
        if "rate_limit_per_second" in update.model_fields_set:
            state.limiter.configure(update.rate_limit_per_second)
        if update.token_lifetime_seconds is not None:
            state.tokens.lifetime_s = update.token_lifetime_seconds
        if update.unique_references is not None:
            state.set_unique_references(update.unique_references)
        if update.documented_fields_only is not None:
            state.documented_fields_only = update.documented_fields_only
        return _json(settings())

    @router.post("/tokens/expire")
    async def expire_tokens() -> Response:
        return _json({"expired": state.tokens.expire_all()})

    @router.get("/stats")
    async def stats() -> Response:
        return _json(state.stats.snapshot())

    @router.post("/stats/reset")
    async def reset_stats() -> Response:
        state.stats.reset()
        return _json(state.stats.snapshot())

    @router.post("/reset")
    async def reset() -> Response:
        """Faults off, rate limit/token lifetime/lock dates as at start; ledgers and counters stay."""
        state.reset_settings()
        return _json({"settings": settings(), "faults": state.faults.settings.model_dump()})

    return router

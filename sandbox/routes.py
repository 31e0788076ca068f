"""The PowerOffice Go v2 routes the integration uses, over the caller's client ledger.

Lists page with PageNumber/PageSize and answer 204 with no body when empty. Handlers are
async and never hold the ledger lock across an await. (No `from __future__ import
annotations` here: FastAPI must see the dependency aliases defined inside `api_router`.)
"""
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Callable, Iterable

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from sandbox.auth import bearer_client_key
from sandbox.filters import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page, parse_number_filter
from sandbox.jsonpatch import PATCH_MEDIA_TYPE
from sandbox.ledger import ClientLedger
from sandbox.problems import UnsupportedMediaType
from sandbox.state import SandboxState
from sandbox.wire import (
    account_dto,
    customer_dto,
    decode_json,
    documented,
    dumps,
    invoice_dto,
    ledger_entry_dto,
    open_item_dto,
    parse_bank_voucher,
    project_dto,
    voucher_dto,
)

JSON_MEDIA_TYPES = ("application/json", "text/json", PATCH_MEDIA_TYPE)  # what ASP.NET accepts for POST


class Paging:
    def __init__(self, number: int, size: int):
        self.number = number
        self.size = size


async def paging(
    PageNumber: Annotated[int, Query(ge=1)] = 1,
    PageSize: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> Paging:
    """Async on purpose, like every dependency here: sync ones would hop through a thread pool."""
    return Paging(PageNumber, PageSize)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json", headers=headers)


def listing(items: Iterable[Any], paging: Paging, to_dto: Callable[[Any], dict[str, Any]]) -> Response:
    chunk = page(list(items), paging.number, paging.size)
    if not chunk:
        return Response(status_code=204)
    return json_response([to_dto(item) for item in chunk])


async def json_body(request: Request, allowed: tuple[str, ...], any_plus_json: bool = False) -> Any:
    """The decoded body, if it came with a media type this route takes (else 415)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    plus_json = media_type.startswith("application/") and media_type.endswith("+json")
    if media_type not in allowed and not (any_plus_json and plus_json):
        raise UnsupportedMediaType(f"Content-Type {media_type or '(none)'} is not supported here; "
                                   f"use {' or '.join(allowed)}.")
    return decode_json(await request.body())


def api_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/v2")

    def shaped(shape: str, to_dto: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        """The DTO, cut to its documented fields while the sandbox is told to answer only those."""
        return lambda item: documented(shape, to_dto(item)) if state.documented_fields_only else to_dto(item)

    async def client_ledger(authorization: Annotated[str | None, Header()] = None) -> ClientLedger:
        return state.ledgers[bearer_client_key(state.tokens, authorization)]

    Ledger = Annotated[ClientLedger, Depends(client_ledger)]
    Page = Annotated[Paging, Depends(paging)]

    @router.get("/GeneralLedgerAccounts")
    async def list_accounts(ledger: Ledger, paging: Page, accountNos: str | None = None) -> Response:
        return listing(ledger.accounts(parse_number_filter(accountNos, "accountNos")), paging, shaped("account", account_dto))

    @router.get("/Customers")
    async def list_customers(ledger: Ledger, paging: Page, customerNos: str | None = None,
                             externalNos: str | None = None) -> Response:
        found = ledger.customers(parse_number_filter(customerNos, "customerNos"),
                                 parse_number_filter(externalNos, "externalNos"))
        return listing(found, paging, shaped("customer", customer_dto))

    @router.get("/Customers/{customer_id}")
    async def get_customer(ledger: Ledger, customer_id: int) -> Response:
        return json_response(customer_dto(ledger.customer(customer_id)))

    @router.patch("/Customers/{customer_id}")
    async def patch_customer(ledger: Ledger, customer_id: int, request: Request) -> Response:
        operations = await json_body(request, (PATCH_MEDIA_TYPE,))
        return json_response(customer_dto(ledger.patch_customer(customer_id, operations)))

    @router.get("/Projects")
    async def list_projects(ledger: Ledger, paging: Page, customerNos: str | None = None,
                            createdDateTimeOffsetGreaterThan: datetime | None = None) -> Response:
        found = ledger.projects(parse_number_filter(customerNos, "customerNos"), createdDateTimeOffsetGreaterThan)
        return listing(found, paging, shaped("project", project_dto))

    @router.get("/Projects/{project_id}")
    async def get_project(ledger: Ledger, project_id: int) -> Response:
        return json_response(project_dto(ledger.project(project_id)))

    @router.patch("/Projects/{project_id}")
    async def patch_project(ledger: Ledger, project_id: int, request: Request) -> Response:
        """200 with an empty body: the OpenAPI declares this PATCH as returning void."""
        ledger.patch_project(project_id, await json_body(request, (PATCH_MEDIA_TYPE,)))
        return Response(status_code=200)

    @router.get("/OutgoingInvoices")
    async def list_invoices(ledger: Ledger, paging: Page, invoiceNos: str | None = None,
                            customerNos: str | None = None, onlyUnpaidInvoices: bool = False) -> Response:
        found = ledger.invoices(parse_number_filter(invoiceNos, "invoiceNos"),
                                parse_number_filter(customerNos, "customerNos"), onlyUnpaidInvoices)
        return listing(found, paging, shaped("invoice", invoice_dto))

    @router.get("/Customerledger/OpenItems")
    async def open_items(ledger: Ledger, paging: Page, on: Annotated[date, Query(alias="date")],
                         invoiceNos: str | None = None, customerNos: str | None = None) -> Response:
        found = ledger.open_items(on, parse_number_filter(invoiceNos, "invoiceNos"),
                                  parse_number_filter(customerNos, "customerNos"))
        return listing(found, paging, shaped("open_item", open_item_dto))

    @router.get("/Customerledger/Statement")
    async def statement(ledger: Ledger, paging: Page, fromDate: date, toDate: date, customerNos: str | None = None,
                        onlyCreatedByCurrentIntegration: bool = False) -> Response:
        """Every voucher here is the integration's own, so onlyCreatedByCurrentIntegration changes nothing."""
        found = ledger.statement(fromDate, toDate, parse_number_filter(customerNos, "customerNos"))
        return listing(found, paging, shaped("ledger_entry", ledger_entry_dto))

    @router.post("/Vouchers/BankJournals")
    async def post_bank_voucher(ledger: Ledger, request: Request) -> Response:
        draft = parse_bank_voucher(await json_body(request, JSON_MEDIA_TYPES, any_plus_json=True))
        voucher = ledger.post_bank_voucher(draft)
        return json_response(voucher_dto(voucher), status_code=201,
                             headers={"Location": f"/v2/Vouchers/BankJournals/{voucher.id}"})

    @router.get("/Vouchers/BankJournals/{voucher_id}")
    async def get_bank_voucher(ledger: Ledger, voucher_id: uuid.UUID) -> Response:
        return json_response(voucher_dto(ledger.voucher(voucher_id)))

    @router.get("/LockDateSettings")
    async def lock_date_settings(ledger: Ledger) -> Response:
        return json_response({"LockDate": ledger.lock_date})

    return router

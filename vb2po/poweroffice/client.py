"""The PowerOffice Go v2 client: the one module the consumer talks to PowerOffice through.

A payment becomes one bank journal voucher (`POST /Vouchers/BankJournals`,
BankVoucherPostDto) with two lines that sum to zero:

    {"VoucherDate": "2026-01-15", "CurrencyCode": "NOK", "Description": "...",
     "ExternalImportReference": "vb2po-1-12-7",
     "VoucherLines": [
       {"AccountId": <bank GL account id>, "PostingDate": "2026-01-15", "CurrencyAmount": 1250.0},
       {"AccountId": <customer SubledgerAccountId>, "PostingDate": "2026-01-15",
        "CurrencyAmount": -1250.0, "InvoiceNo": "100123"}]}

Unconfirmed against the live API (the OpenAPI supports but does not settle them), and
therefore kept here, in `bank_voucher_payload`, and nowhere else:
- The customer line's `AccountId` is the customer's `SubledgerAccountId`. The OpenAPI says
  AccountId is "the id of the general ledger account or the subledger account" and
  CustomerDto.SubledgerAccountId is "the identifier of the subledger account associated
  with the customer"; the customer `Number` is the sub-ledger account *number*, not id.
- Sign: `CurrencyAmount` is positive for a debit, negative for a credit. Money received
  debits the bank (+amount) and credits the customer (-amount), which reduces the
  invoice's `Balance` by the amount once PowerOffice matches the line to `InvoiceNo`. A
  reversal of a payment swaps the sides; a payment on account has no `InvoiceNo`.
- A payment in a foreign currency is posted in that currency (the voucher's and the lines'
  `CurrencyCode`, the currency amount) with `CurrencyExchangeRate` = company amount /
  currency amount: the BankVoucherLinePostDto takes no company-currency amount, only the rate
  ("normalized, base 1"), which is how the company-currency amount from Visma is kept.
- A second voucher with the same `ExternalImportReference` *may* be rejected ("only one instance
  of the reference can exist on the client"); the status is not documented, so both 409 and a
  400 saying the reference exists mean "already applied". vb2po does not rely on it: after an
  ambiguous outcome it looks the reference up first (`consumer.payments`).
Account ids (bank GL account, customer sub-ledger) come from caches filled in bulk, so
posting a payment is one request.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import threading
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from vb2po import metrics
from vb2po.errors import TerminalError, TransientError
from vb2po.poweroffice import jsonmoney
from vb2po.poweroffice.accounts import ACCOUNT_NOT_FOUND, CUSTOMER_NOT_FOUND, IdCache
from vb2po.poweroffice.auth import SUBSCRIPTION_HEADER, TokenProvider, reveal
from vb2po.poweroffice.errors import DUPLICATE_REFERENCE, classify
from vb2po.poweroffice.models import (
    ALREADY_APPLIED,
    APPLIED,
    Customer,
    LedgerEntry,
    OpenItem,
    OutgoingInvoice,
    PaymentPosting,
    PostingResult,
    Project,
    UnreadableAnswer,
)
from vb2po.poweroffice.query import number_filters
from vb2po.poweroffice.ratelimit import RateLimiter, Unlimited
from vb2po.poweroffice.session import EnvironmentOnceSession

PAGE_SIZE = 5000  # PowerOffice's default; its maximum is 20000
JSON_PATCH = "application/json-patch+json"


def bank_voucher_payload(posting: PaymentPosting, customer_account_id: int) -> dict[str, Any]:
    """The BankVoucherPostDto for one payment (see the module docstring for what is assumed)."""
    what = "Tilbakeføring av innbetaling" if posting.reversal else "Innbetaling"
    on = f"faktura {posting.invoice_no}" if posting.invoice_no is not None else "a konto"
    description = posting.description or f"{what} {on}"
    received = -posting.amount if posting.reversal else posting.amount  # debit the bank for money received
    lines: list[dict[str, Any]] = [
        {"AccountId": posting.bank_account_id, "PostingDate": posting.posting_date.isoformat(),
         "CurrencyAmount": received, "Description": description},
        {"AccountId": customer_account_id, "PostingDate": posting.posting_date.isoformat(),
         "CurrencyAmount": -received, "Description": description},
    ]
    if posting.invoice_no is not None:
        lines[1]["InvoiceNo"] = str(posting.invoice_no)
    if posting.exchange_rate is not None:  # the company-currency amount, in the form the API takes it
        for line in lines:
            line["CurrencyCode"] = posting.currency_code
            line["CurrencyExchangeRate"] = posting.exchange_rate
    return {
        "VoucherDate": posting.voucher_date.isoformat(),
        "CurrencyCode": posting.currency_code,
        "Description": description,
        "ExternalImportReference": posting.external_import_reference,
        "VoucherLines": lines,
    }


UNREADABLE_ANSWER = "unreadable_answer"


def _read_all(model, rows: list) -> list:
    """Rows read into `model`; an answer that lacks what vb2po needs is terminal for what asked."""
    try:
        return [model.from_dto(r) for r in rows]
    except UnreadableAnswer as exc:
        raise TerminalError(str(exc), reason=UNREADABLE_ANSWER) from None


def endpoint_label(path: str) -> str:
    """The path with ids replaced, so the metric label stays low-cardinality."""
    return "/" + "/".join("{id}" if part.isdigit() or len(part) == 36 and part.count("-") == 4 else part
                          for part in path.strip("/").split("/"))


class PowerOfficeClient:
    """One PowerOffice client (company), one client key. Thread-safe; reuse one per client key."""

    def __init__(self, api_url: str, token_url: str, application_key: SecretStr | str, client_key: SecretStr | str,
                 subscription_key: SecretStr | str, timeout: float | tuple[float, float] = 10.0, *,
                 session: requests.Session | None = None, page_size: int = PAGE_SIZE,
                 rate_limiter: RateLimiter | Unlimited | None = None,
                 in_flight: threading.Semaphore | None = None):
        """`in_flight`: a slot is held for each request on its way (shared by the clients of one
        process: no more than its size of requests are ever open at once)."""
        self._api_url = api_url.rstrip("/")
        self._limiter = rate_limiter or Unlimited()
        self._in_flight: threading.Semaphore | contextlib.nullcontext = in_flight or contextlib.nullcontext()
        self._subscription_key = subscription_key
        self._timeout = timeout
        self._page_size = page_size
        self._session = session or EnvironmentOnceSession()
        if session is None:  # no transport-level retries: a blindly repeated POST is the caller's call
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        self.tokens = TokenProvider(self._session, token_url, application_key, client_key, subscription_key, timeout)
        self.customer_accounts = IdCache(self._customer_account_ids, "customer", CUSTOMER_NOT_FOUND)
        self.ledger_accounts = IdCache(self._ledger_account_ids, "general ledger account", ACCOUNT_NOT_FOUND)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "PowerOfficeClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- payments ------------------------------------------------------------------------
    def post_payment(self, posting: PaymentPosting) -> PostingResult:
        account_id = posting.customer_account_id or self.customer_account_id(posting.customer_no)
        payload = bank_voucher_payload(posting, account_id)
        try:
            response = self._request("POST", "/Vouchers/BankJournals", json_body=payload)
        except TerminalError as err:
            if err.reason == DUPLICATE_REFERENCE:
                return PostingResult(ALREADY_APPLIED, posting.external_import_reference)
            raise
        voucher = self._decode(response)
        voucher_id = str(voucher["Id"])[:64] if isinstance(voucher, dict) and voucher.get("Id") is not None else None
        return PostingResult(APPLIED, posting.external_import_reference, voucher_id)

    # -- look-ups ------------------------------------------------------------------------
    def get_invoices(self, invoice_nos: Iterable[int]) -> list[OutgoingInvoice]:
        rows = self._get_filtered("/OutgoingInvoices", {"invoiceNos": invoice_nos})
        return _read_all(OutgoingInvoice, rows)

    def get_customers(self, customer_nos: Iterable[int]) -> list[Customer]:
        customers = _read_all(Customer, self._get_filtered("/Customers", {"customerNos": customer_nos}))
        self.customer_accounts.remember({c.number: c.subledger_account_id for c in customers})
        return customers

    def prefetch_customers(self, customer_nos: Iterable[int]) -> None:
        self.customer_accounts.prefetch(customer_nos)

    def prefetch_all_customers(self) -> int:
        """Every customer's sub-ledger account in a few paged requests (at start-up)."""
        customers = _read_all(Customer, self._get_filtered("/Customers", {}))
        self.customer_accounts.remember({c.number: c.subledger_account_id for c in customers})
        return len(customers)

    def customer_account_id(self, customer_no: int) -> int:
        return self.customer_accounts.get(customer_no)

    def account_id(self, account_no: int) -> int:
        return self.ledger_accounts.get(account_no)

    def list_projects(self, customer_nos: Iterable[int] | None, created_after: datetime | None = None) -> list[Project]:
        """Projects of these customers (None = of all customers), optionally only newer ones."""
        extra = {"createdDateTimeOffsetGreaterThan": created_after.isoformat()} if created_after else {}
        rows = self._get_filtered("/Projects", {"customerNos": customer_nos}, extra)
        return _read_all(Project, rows)

    def set_deny_time_tracking(self, project_id: int, deny: bool) -> None:
        patch = [{"op": "replace", "path": "/DenyTimeTracking", "value": bool(deny)}]
        self._request("PATCH", f"/Projects/{int(project_id)}", json_body=patch, content_type=JSON_PATCH)

    def open_items(self, on: date, invoice_nos: Iterable[int] | None = None,
                   customer_nos: Iterable[int] | None = None) -> list[OpenItem]:
        rows = self._get_filtered("/Customerledger/OpenItems", {"invoiceNos": invoice_nos, "customerNos": customer_nos},
                                  {"date": on.isoformat()})
        return _read_all(OpenItem, rows)

    def ledger_entries(self, customer_no: int, posted_from: date, posted_to: date) -> list[LedgerEntry]:
        """This client's entries on one customer's sub-ledger posted in a date range, created by this
        integration (`GET /Customerledger/Statement`, documented with `ExternalImportReference`)."""
        rows = self._get_filtered("/Customerledger/Statement", {"customerNos": [customer_no]},
                                  {"fromDate": posted_from.isoformat(), "toDate": posted_to.isoformat(),
                                   "onlyCreatedByCurrentIntegration": "true"})
        return _read_all(LedgerEntry, rows)

    def lock_date(self) -> date | None:
        body = self._decode(self._request("GET", "/LockDateSettings"))
        value = body.get("LockDate") if isinstance(body, dict) else None
        return date.fromisoformat(str(value)[:10]) if value else None

    # -- plumbing ------------------------------------------------------------------------
    def _customer_account_ids(self, customer_nos: list[int]) -> dict[int, int]:
        customers = _read_all(Customer, self._get_filtered("/Customers", {"customerNos": customer_nos}))
        return {c.number: c.subledger_account_id for c in customers}

    def _ledger_account_ids(self, account_nos: list[int]) -> dict[int, int]:
        rows = self._get_filtered("/GeneralLedgerAccounts", {"accountNos": account_nos})
        try:
            return {int(r["AccountNo"]): int(r["Id"]) for r in rows}
        except (KeyError, TypeError, ValueError) as exc:
            raise TerminalError(f"PowerOffice's general-ledger accounts are not readable ({exc!r})",
                                reason=UNREADABLE_ANSWER) from None

    def _get_filtered(self, path: str, filters: dict[str, Iterable[int] | None],
                      extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """All pages for every combination of filter chunks; an empty filter matches nothing."""
        chunked: list[list[tuple[str, str]]] = []
        for name, numbers in filters.items():
            if numbers is None:
                continue
            chunks = number_filters(numbers)
            if not chunks:
                return []
            chunked.append([(name, chunk) for chunk in chunks])
        rows: list[dict[str, Any]] = []
        for combination in itertools.product(*chunked):
            rows.extend(self._get_all(path, {**(extra or {}), **dict(combination)}))
        return rows

    def _get_all(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page_number in itertools.count(1):
            response = self._request("GET", path, params={**params, "PageNumber": page_number,
                                                          "PageSize": self._page_size})
            if response.status_code == 204 or not response.content:
                break
            chunk = self._decode(response)
            if not isinstance(chunk, list):
                raise TerminalError(f"PowerOffice answered {path} with {type(chunk).__name__}, not a list",
                                    reason=UNREADABLE_ANSWER)
            rows.extend(chunk)
            if len(chunk) < self._page_size:
                break
        return rows

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json_body: Any = None, content_type: str = "application/json") -> requests.Response:
        """One call; on 401 the token is renewed and the call made once more."""
        body = jsonmoney.dumps(json_body) if json_body is not None else None
        endpoint = endpoint_label(path)
        for attempt in (1, 2):
            self._limiter.acquire()
            try:
                with self._in_flight:  # (a token fetched now counts as one of the requests open)
                    token = self.tokens.token()
                    headers = {"Authorization": f"Bearer {token}", SUBSCRIPTION_HEADER: reveal(self._subscription_key),
                               "Accept": "application/json"}
                    if body is not None:
                        headers["Content-Type"] = content_type
                    response = self._session.request(method, self._api_url + path, params=params, data=body,
                                                     headers=headers, timeout=self._timeout)
            except requests.RequestException as exc:
                metrics.PO_REQUESTS.labels(endpoint, "error").inc()
                raise classify(exc) from exc
            metrics.PO_REQUESTS.labels(endpoint, str(response.status_code)).inc()
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(token)
                continue
            if response.status_code >= 400:
                raise classify(response)
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise TransientError(f"PowerOffice answered {response.status_code} with a body that is not JSON "
                                 f"(a proxy in between?): {response.text[:200]}", reason="bad_response") from exc

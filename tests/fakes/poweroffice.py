"""An in-memory PowerOfficeApi for consumer unit tests: the sandbox's ledger, without HTTP.

It goes through the same steps as the HTTP client wherever behaviour could differ: the
same voucher payload (`bank_voucher_payload`), the sandbox's own request parsing and
ledger rules, the same DTO readers and the same error mapping (`classify_problem`), so a
consumer test sees the outcomes it would see against the sandbox server. What it leaves
out: tokens, subscription key, rate limit, latency. `fail_next` queues errors to raise,
and `calls` counts calls per method (e.g. to prove there is no lookup per payment).
"""
from __future__ import annotations

from collections import Counter, deque
from datetime import date, datetime
from typing import Any, Callable, Iterable, TypeVar

from devstack.dataset import DatasetSpec
from sandbox.filters import NumberFilter
from sandbox.ledger import ClientLedger
from sandbox.problems import Problem
from sandbox.seed import DEFAULT_LOCK_DATE, seed_client
from sandbox.wire import (
    account_dto,
    customer_dto,
    invoice_dto,
    ledger_entry_dto,
    open_item_dto,
    parse_bank_voucher,
    project_dto,
)
from vb2po.errors import TerminalError
from vb2po.poweroffice.accounts import ACCOUNT_NOT_FOUND, CUSTOMER_NOT_FOUND, IdCache
from vb2po.poweroffice.client import bank_voucher_payload
from vb2po.poweroffice.errors import DUPLICATE_REFERENCE, classify_problem
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
)

T = TypeVar("T")


def _numbers(numbers: Iterable[int] | None) -> NumberFilter | None:
    return None if numbers is None else NumberFilter(frozenset(int(n) for n in numbers), ())


class FakePowerOffice:
    def __init__(self, ledger: ClientLedger):
        self.ledger = ledger
        self.calls: Counter[str] = Counter()
        self._failures: deque[tuple[str | None, Exception]] = deque()
        self._lost_answers: deque[tuple[str | None, Exception]] = deque()
        self.customer_accounts = IdCache(self._customer_account_ids, "customer", CUSTOMER_NOT_FOUND)
        self.ledger_accounts = IdCache(self._ledger_account_ids, "general ledger account", ACCOUNT_NOT_FOUND)

    @classmethod
    def seeded(cls, spec: DatasetSpec | None = None, client_key: str = "fake-client",
               lock_date: date | None = DEFAULT_LOCK_DATE) -> "FakePowerOffice":
        return cls(seed_client(client_key, spec or DatasetSpec(), lock_date))

    def fail_next(self, error: Exception, times: int = 1, method: str | None = None) -> None:
        """Raise `error` on the next `times` calls (of `method` only, if given)."""
        self._failures.extend((method, error) for _ in range(times))

    def lose_next_answer(self, error: Exception, times: int = 1, method: str | None = None) -> None:
        """Do the next `times` calls (of `method` only, if given), then raise `error` as if the answer
        was lost on the way back (a cut connection, a timeout, a 5xx from a proxy after the work)."""
        self._lost_answers.extend((method, error) for _ in range(times))

    @staticmethod
    def _take(queue: deque[tuple[str | None, Exception]], method: str) -> Exception | None:
        for i, (only, error) in enumerate(queue):
            if only is None or only == method:
                del queue[i]
                return error
        return None

    def _call(self, method: str, work: Callable[[], T]) -> T:
        self.calls[method] += 1
        error = self._take(self._failures, method)
        if error is not None:
            raise error
        try:
            result = work()
        except Problem as problem:
            raise classify_problem(problem.status, problem.body(), where=f"PowerOffice (fake) {method}") from None
        lost = self._take(self._lost_answers, method)
        if lost is not None:
            raise lost
        return result

    # -- PowerOfficeApi ------------------------------------------------------------------
    def post_payment(self, posting: PaymentPosting) -> PostingResult:
        account_id = posting.customer_account_id or self.customer_account_id(posting.customer_no)

        def work() -> PostingResult:
            voucher = self.ledger.post_bank_voucher(parse_bank_voucher(bank_voucher_payload(posting, account_id)))
            return PostingResult(APPLIED, posting.external_import_reference, str(voucher.id))

        try:
            return self._call("post_payment", work)
        except TerminalError as err:
            if err.reason == DUPLICATE_REFERENCE:
                return PostingResult(ALREADY_APPLIED, posting.external_import_reference)
            raise

    def get_invoices(self, invoice_nos: Iterable[int]) -> list[OutgoingInvoice]:
        return self._call("get_invoices", lambda: [
            OutgoingInvoice.from_dto(invoice_dto(i)) for i in self.ledger.invoices(_numbers(invoice_nos))])

    def get_customers(self, customer_nos: Iterable[int]) -> list[Customer]:
        customers = self._call("get_customers", lambda: [
            Customer.from_dto(customer_dto(c)) for c in self.ledger.customers(_numbers(customer_nos))])
        self.customer_accounts.remember({c.number: c.subledger_account_id for c in customers})
        return customers

    def prefetch_customers(self, customer_nos: Iterable[int]) -> None:
        self.customer_accounts.prefetch(customer_nos)

    def prefetch_all_customers(self) -> int:
        found = self._call("get_customers", lambda: self.ledger.customers(None))
        self.customer_accounts.remember({c.number: c.subledger_account_id for c in found})
        return len(found)

    def customer_account_id(self, customer_no: int) -> int:
        return self.customer_accounts.get(customer_no)

    def account_id(self, account_no: int) -> int:
        return self.ledger_accounts.get(account_no)

    def list_projects(self, customer_nos: Iterable[int] | None, created_after: datetime | None = None) -> list[Project]:
        return self._call("list_projects", lambda: [
            Project.from_dto(project_dto(p)) for p in self.ledger.projects(_numbers(customer_nos), created_after)])

    def set_deny_time_tracking(self, project_id: int, deny: bool) -> None:
        patch: list[dict[str, Any]] = [{"op": "replace", "path": "/DenyTimeTracking", "value": bool(deny)}]
        self._call("set_deny_time_tracking", lambda: self.ledger.patch_project(project_id, patch))

    def open_items(self, on: date, invoice_nos: Iterable[int] | None = None,
                   customer_nos: Iterable[int] | None = None) -> list[OpenItem]:
        return self._call("open_items", lambda: [
            OpenItem.from_dto(open_item_dto(o))
            for o in self.ledger.open_items(on, _numbers(invoice_nos), _numbers(customer_nos))])

    def lock_date(self) -> date | None:
        return self._call("lock_date", lambda: self.ledger.lock_date)

    def ledger_entries(self, customer_no: int, posted_from: date, posted_to: date) -> list[LedgerEntry]:
        return self._call("ledger_entries", lambda: [
            LedgerEntry.from_dto(ledger_entry_dto(e))
            for e in self.ledger.statement(posted_from, posted_to, _numbers([customer_no]))])

    # -- cache fillers -------------------------------------------------------------------
    def _customer_account_ids(self, customer_nos: list[int]) -> dict[int, int]:
        found = self._call("get_customers", lambda: self.ledger.customers(_numbers(customer_nos)))
        return {c.number: c.subledger_account_id for c in found}

    def _ledger_account_ids(self, account_nos: list[int]) -> dict[int, int]:
        found = self._call("get_accounts", lambda: [account_dto(a) for a in self.ledger.accounts(_numbers(account_nos))])
        return {int(a["AccountNo"]): int(a["Id"]) for a in found}

"""The PowerOffice client against the sandbox server; shared behaviour also against the fake."""
from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Callable, Iterator

import pytest
from pydantic import SecretStr

from devstack.dataset import Invoice, invoices
from sandbox.server import SandboxServer
from tests.fakes.poweroffice import FakePowerOffice
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY, SANDBOX_SPEC
from vb2po.errors import TerminalError, TransientError
from vb2po.poweroffice import PaymentPosting, PowerOfficeApi, PowerOfficeClient

pytestmark = pytest.mark.integration

BANK_ACCOUNT_NO = 1920


def make_client(sandbox: SandboxServer, timeout: float = 5.0, subscription_key: str | None = None,
                page_size: int = 5000) -> PowerOfficeClient:
    return PowerOfficeClient(
        sandbox.api_url, sandbox.token_url, SecretStr(sandbox.application_key), SecretStr(SANDBOX_CLIENT_KEY),
        SecretStr(subscription_key or sandbox.subscription_key), timeout=timeout, page_size=page_size,
    )


@pytest.fixture
def http_client(sandbox_server: SandboxServer) -> Iterator[PowerOfficeClient]:
    with make_client(sandbox_server) as client:
        yield client


@pytest.fixture(params=["http", "fake"])
def api(request: pytest.FixtureRequest) -> PowerOfficeApi:
    """The same behaviour is expected from the HTTP client and the in-memory fake."""
    if request.param == "http":
        return request.getfixturevalue("http_client")
    return FakePowerOffice.seeded(SANDBOX_SPEC, SANDBOX_CLIENT_KEY)


def set_lock_date(api: PowerOfficeApi, request: pytest.FixtureRequest, lock_date: date) -> None:
    if isinstance(api, FakePowerOffice):
        api.ledger.set_lock_date(lock_date)
    else:
        request.getfixturevalue("sandbox_server").control.set_lock_date(SANDBOX_CLIENT_KEY, lock_date)


def payment(api: PowerOfficeApi, invoice: Invoice, amount: str = "100.00", *, reference: str | None = None,
            on: date | None = None, invoice_no: int | None = None) -> PaymentPosting:
    day = on or invoice.voucher_date + timedelta(days=1)
    return PaymentPosting(
        external_import_reference=reference or f"vb2po-test-{uuid.uuid4().hex[:16]}", voucher_date=day,
        posting_date=day, currency_code="NOK", amount=Decimal(amount), bank_account_id=api.account_id(BANK_ACCOUNT_NO),
        customer_no=invoice.cust_no, invoice_no=invoice_no or invoice.invoice_no,
    )


def balance(api: PowerOfficeApi, invoice: Invoice) -> Decimal:
    (found,) = api.get_invoices([invoice.invoice_no])
    return found.balance


# -- behaviour shared by client and fake ---------------------------------------------------------
def test_payment_is_applied_then_already_applied_and_counted_once(api: PowerOfficeApi, fresh_invoice: Invoice) -> None:
    posting = payment(api, fresh_invoice, "250.50")
    first = api.post_payment(posting)
    again = api.post_payment(posting)
    assert first.applied and first.voucher_id
    assert again.already_applied and again.external_import_reference == posting.external_import_reference
    assert balance(api, fresh_invoice) == fresh_invoice.balance_before_sync - Decimal("250.50")


def test_payment_into_a_locked_period_is_terminal_lock_date(api: PowerOfficeApi, fresh_invoice: Invoice,
                                                            request: pytest.FixtureRequest) -> None:
    posting = payment(api, fresh_invoice)
    set_lock_date(api, request, posting.posting_date)
    with pytest.raises(TerminalError) as caught:
        api.post_payment(posting)
    assert caught.value.reason == "lock_date" and str(posting.posting_date) in str(caught.value)
    assert balance(api, fresh_invoice) == fresh_invoice.balance_before_sync


def test_payment_for_an_unknown_invoice_is_accepted_as_an_unmatched_line(api: PowerOfficeApi, fresh_invoice: Invoice) -> None:
    """The contract promises no refusal, so neither does the sandbox: vb2po must check first."""
    before = balance(api, fresh_invoice)
    posted = payment(api, fresh_invoice, "12.00", invoice_no=999_999)
    assert api.post_payment(posted).applied
    assert balance(api, fresh_invoice) == before
    (entry,) = [e for e in api.ledger_entries(fresh_invoice.cust_no, posted.posting_date, posted.posting_date)
                if e.external_import_reference == posted.external_import_reference]
    assert entry.invoice_no == "999999"


def test_a_posted_voucher_is_found_again_by_its_reference(api: PowerOfficeApi, fresh_invoice: Invoice) -> None:
    posted = payment(api, fresh_invoice, "3.00")
    api.post_payment(posted)
    found = api.ledger_entries(fresh_invoice.cust_no, posted.posting_date, posted.posting_date)
    assert [e.external_import_reference for e in found].count(posted.external_import_reference) == 1


def test_payment_for_an_unknown_customer_is_terminal_customer_not_found(api: PowerOfficeApi, fresh_invoice: Invoice) -> None:
    stranger = Invoice(fresh_invoice.invoice_no, 99_999, Decimal(1), Decimal(0), Decimal(0), date(2026, 1, 1), date(2026, 1, 15))
    with pytest.raises(TerminalError) as caught:
        api.post_payment(payment(api, stranger))
    assert caught.value.reason == "customer_not_found"


def test_bank_account_id_is_looked_up_from_its_number(api: PowerOfficeApi) -> None:
    account_id = api.account_id(BANK_ACCOUNT_NO)
    assert account_id != BANK_ACCOUNT_NO  # an id, not the account number
    assert api.account_id(BANK_ACCOUNT_NO) == account_id


def test_time_tracking_can_be_denied_and_allowed_again(api: PowerOfficeApi) -> None:
    project = next(p for p in api.list_projects([10005, 10006, 10007]) if not p.deny_time_tracking)
    api.set_deny_time_tracking(project.id, True)
    assert next(p for p in api.list_projects([project.customer_no]) if p.id == project.id).deny_time_tracking
    api.set_deny_time_tracking(project.id, False)
    assert not next(p for p in api.list_projects([project.customer_no]) if p.id == project.id).deny_time_tracking


def test_open_items_and_invoices_carry_exact_decimal_money(api: PowerOfficeApi, fresh_invoice: Invoice) -> None:
    api.post_payment(payment(api, fresh_invoice, "0.10"))
    (item,) = api.open_items(date(2026, 12, 31), invoice_nos=[fresh_invoice.invoice_no])
    assert item.balance == fresh_invoice.balance_before_sync - Decimal("0.10")
    assert isinstance(item.balance, Decimal) and item.customer_no == fresh_invoice.cust_no


def test_lock_date_is_read(api: PowerOfficeApi) -> None:
    assert api.lock_date() == date(2025, 1, 1)


# -- HTTP only: tokens, caching, gateway and faults ----------------------------------------------
def test_token_is_fetched_once_and_reused_across_calls(sandbox_server: SandboxServer, http_client: PowerOfficeClient) -> None:
    sandbox_server.control.reset_stats()
    http_client.lock_date()
    http_client.get_customers([10000, 10001])
    http_client.list_projects([10000])
    assert sandbox_server.control.request_count("POST /OAuth/Token") == 1
    assert http_client.tokens.fetches == 1


def test_expired_token_is_renewed_once_on_401(sandbox_server: SandboxServer, http_client: PowerOfficeClient) -> None:
    http_client.lock_date()
    sandbox_server.control.reset_stats()
    sandbox_server.control.expire_tokens()
    assert http_client.lock_date() == date(2025, 1, 1)
    assert sandbox_server.control.request_count("GET /v2/LockDateSettings", 401) == 1
    assert sandbox_server.control.request_count("POST /OAuth/Token") == 1


def test_wrong_subscription_key_is_terminal_after_one_renewal(sandbox_server: SandboxServer) -> None:
    sandbox_server.control.reset_stats()
    with make_client(sandbox_server, subscription_key="not-the-key") as client, pytest.raises(TerminalError) as caught:
        client.lock_date()
    assert caught.value.reason == "unauthorized" and "subscription key" in str(caught.value)
    assert sandbox_server.control.request_count("GET /v2/LockDateSettings", 401) == 2


def test_customer_accounts_are_prefetched_in_bulk_not_per_payment(
        sandbox_server: SandboxServer, http_client: PowerOfficeClient, take_fresh_invoice: Callable[[], Invoice]) -> None:
    batch = [take_fresh_invoice() for _ in range(3)]
    http_client.account_id(BANK_ACCOUNT_NO)
    sandbox_server.control.reset_stats()
    http_client.prefetch_customers({i.cust_no for i in batch})
    for invoice in batch:
        assert http_client.post_payment(payment(http_client, invoice, "0.01")).applied
    assert sandbox_server.control.request_count("GET /v2/Customers") == 1
    assert sandbox_server.control.request_count("POST /v2/Vouchers/BankJournals") == 3


def test_invoices_are_read_across_pages_with_range_filters(sandbox_server: SandboxServer) -> None:
    wanted = [i.invoice_no for i in invoices(SANDBOX_SPEC)] + [999_990, 999_991]
    with make_client(sandbox_server, page_size=7) as client:
        found = client.get_invoices(wanted)
    assert sorted(i.invoice_no for i in found) == wanted[:-2]


def test_rate_limit_surfaces_as_transient_with_retry_after(sandbox_server: SandboxServer,
                                                          http_client: PowerOfficeClient) -> None:
    sandbox_server.control.set_rate_limit(10)
    with pytest.raises(TransientError) as caught:
        for _ in range(200):  # stops at the first 429, normally the 11th call
            http_client.lock_date()
    assert caught.value.reason == "rate_limited" and caught.value.retry_after >= 1


def test_service_unavailable_is_transient(sandbox_server: SandboxServer, http_client: PowerOfficeClient) -> None:
    sandbox_server.control.set_faults(error_share=1.0, error_status=503)
    with pytest.raises(TransientError) as caught:
        http_client.lock_date()
    assert caught.value.reason == "http_503"


def test_timeout_is_transient(sandbox_server: SandboxServer) -> None:
    sandbox_server.control.set_faults(timeout_share=1.0, hold_seconds=3)
    with make_client(sandbox_server, timeout=0.5) as client, pytest.raises(TransientError) as caught:
        client.lock_date()
    assert caught.value.reason == "timeout"


@pytest.mark.parametrize("mode, reason", [("drop", "connection_lost"), ("hold", "timeout")])
def test_lost_response_then_retry_reports_already_applied(sandbox_server: SandboxServer, fresh_invoice: Invoice,
                                                          mode: str, reason: str) -> None:
    with make_client(sandbox_server, timeout=0.5) as client:
        posting = payment(client, fresh_invoice, "80.00")
        client.prefetch_customers([fresh_invoice.cust_no])
        sandbox_server.control.set_faults(lost_response_share=1.0, lost_response_mode=mode, hold_seconds=3)
        with pytest.raises(TransientError) as caught:
            client.post_payment(posting)
        assert caught.value.reason == reason
        sandbox_server.control.clear_faults()
        assert client.post_payment(posting).already_applied
        assert balance(client, fresh_invoice) == fresh_invoice.balance_before_sync - Decimal("80.00")

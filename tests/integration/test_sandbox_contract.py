"""The sandbox honours the PowerOffice Go v2 contract, seen only through HTTP with `requests`."""
from __future__ import annotations

import base64
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest
import requests

from devstack.dataset import Invoice
from sandbox.server import SandboxServer
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY

pytestmark = pytest.mark.integration

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def wait_for(condition: Callable[[], Any], timeout_s: float = 5.0, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def request_token(sandbox: SandboxServer, application_key: str | None = None,
                  client_key: str = SANDBOX_CLIENT_KEY, grant_type: str = "client_credentials") -> requests.Response:
    credentials = f"{application_key or sandbox.application_key}:{client_key}".encode()
    return requests.post(sandbox.token_url, data={"grant_type": grant_type}, timeout=5,
                         headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()})


class Po:
    """Raw HTTP against the sandbox's /v2, the way any PowerOffice caller would do it."""

    def __init__(self, sandbox: SandboxServer):
        self.sandbox = sandbox
        self.session = requests.Session()
        self.token = request_token(sandbox).json()["access_token"]

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Ocp-Apim-Subscription-Key": self.sandbox.subscription_key,
                **extra}

    def get(self, path: str, timeout: float = 5, **params: Any) -> requests.Response:
        return self.session.get(self.sandbox.api_url + path, params=params, headers=self.headers(), timeout=timeout)

    def post_voucher(self, body: dict[str, Any], timeout: float = 5) -> requests.Response:
        return self.session.post(self.sandbox.api_url + "/Vouchers/BankJournals", json=body, headers=self.headers(),
                                 timeout=timeout)

    def invoice(self, invoice_no: int) -> dict[str, Any]:
        (found,) = self.get("/OutgoingInvoices", invoiceNos=str(invoice_no)).json()
        return found

    def payment_voucher(self, invoice: Invoice, amount: str, reference: str | None = None,
                        posting_date: date | None = None, invoice_no: str | None = None) -> dict[str, Any]:
        (customer,) = self.get("/Customers", customerNos=str(invoice.cust_no)).json()
        day = (posting_date or invoice.voucher_date + timedelta(days=1)).isoformat()
        return {
            "VoucherDate": day, "CurrencyCode": "NOK", "Description": f"Innbetaling {invoice.invoice_no}",
            "ExternalImportReference": reference or f"test-{uuid.uuid4().hex[:20]}",
            "VoucherLines": [
                {"AccountId": self.sandbox.bank_account_id(SANDBOX_CLIENT_KEY), "PostingDate": day,
                 "CurrencyAmount": float(amount)},
                {"AccountId": customer["SubledgerAccountId"], "PostingDate": day, "CurrencyAmount": -float(amount),
                 "InvoiceNo": invoice_no or str(invoice.invoice_no)},
            ],
        }


@pytest.fixture
def po(sandbox_server: SandboxServer) -> Po:
    return Po(sandbox_server)


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert PROBLEM_KEYS <= body.keys() and body["status"] == status
    return body


# -- authentication and gateway ---------------------------------------------------------------
def test_token_is_issued_and_refused_once_expired(sandbox_server: SandboxServer, po: Po) -> None:
    sandbox_server.control.set_token_lifetime(1)
    answer = request_token(sandbox_server)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1 and body["access_token"]
    po.token = body["access_token"]
    assert po.get("/LockDateSettings").status_code == 200
    wait_for(lambda: po.get("/LockDateSettings").status_code == 401, timeout_s=5)
    assert "expired" in assert_problem(po.get("/LockDateSettings"), 401)["detail"]


@pytest.mark.parametrize("application_key, client_key", [("wrong-app-key", SANDBOX_CLIENT_KEY), (None, "no-such-client")])
def test_token_is_refused_for_wrong_application_or_client_key(sandbox_server: SandboxServer, application_key: str | None,
                                                              client_key: str) -> None:
    body = assert_problem(request_token(sandbox_server, application_key, client_key), 401)
    assert body["error"] == "invalid_client"


def test_token_is_refused_for_other_grant_types(sandbox_server: SandboxServer) -> None:
    assert assert_problem(request_token(sandbox_server, grant_type="password"), 400)["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("subscription_key, wording", [(None, "missing"), ("wrong-key", "invalid")])
def test_api_call_is_refused_without_valid_subscription_key(po: Po, subscription_key: str | None, wording: str) -> None:
    headers = po.headers()
    del headers["Ocp-Apim-Subscription-Key"]
    if subscription_key:
        headers["Ocp-Apim-Subscription-Key"] = subscription_key
    response = requests.get(po.sandbox.api_url + "/LockDateSettings", headers=headers, timeout=5)
    assert wording in assert_problem(response, 401)["message"]


def test_api_call_is_refused_without_bearer_token(po: Po) -> None:
    response = requests.get(po.sandbox.api_url + "/LockDateSettings", timeout=5,
                            headers={"Ocp-Apim-Subscription-Key": po.sandbox.subscription_key})
    assert_problem(response, 401)


def test_rate_limit_answers_429_with_retry_after_then_admits_again(po: Po) -> None:
    po.sandbox.control.set_rate_limit(10)
    rejected_before = po.sandbox.control.stats()["rate_limited"]
    started = time.monotonic()
    statuses = [po.get("/LockDateSettings") for _ in range(25)]
    windows = int(time.monotonic() - started) + 1  # 1 on any sane machine: 25 calls take far less than a second
    throttled = [r for r in statuses if r.status_code == 429]
    assert sum(r.status_code == 200 for r in statuses) <= 10 * windows and throttled
    assert int(throttled[0].headers["Retry-After"]) >= 1
    assert_problem(throttled[0], 429)
    assert po.sandbox.control.stats()["rate_limited"] - rejected_before == len(throttled)
    wait_for(lambda: po.get("/LockDateSettings").status_code == 200, timeout_s=3, interval_s=0.25)


# -- reading ------------------------------------------------------------------------------------
def test_customers_are_found_by_number_with_their_subledger_account(po: Po) -> None:
    found = po.get("/Customers", customerNos="10000,10002-10003").json()
    assert [c["Number"] for c in found] == [10000, 10002, 10003]
    assert all(c["SubledgerAccountId"] not in (c["Id"], c["Number"]) for c in found)
    one = po.get(f"/Customers/{found[0]['Id']}").json()
    assert one["Number"] == 10000


def test_project_time_tracking_is_denied_with_json_patch(po: Po) -> None:
    project = next(p for p in po.get("/Projects", customerNos="10001-10009").json() if not p["DenyTimeTracking"])
    url = f"{po.sandbox.api_url}/Projects/{project['Id']}"
    patch = '[{"op": "replace", "path": "/DenyTimeTracking", "value": true}]'
    wrong_type = requests.patch(url, data=patch, headers=po.headers(**{"Content-Type": "application/json"}), timeout=5)
    assert_problem(wrong_type, 415)
    done = requests.patch(url, data=patch, headers=po.headers(**{"Content-Type": "application/json-patch+json"}),
                          timeout=5)
    assert done.status_code == 200
    assert po.get(f"/Projects/{project['Id']}").json()["DenyTimeTracking"] is True


def test_customer_is_patched_but_not_archived_while_it_owes_money(po: Po) -> None:
    (customer,) = po.get("/Customers", customerNos="10003").json()
    url = f"{po.sandbox.api_url}/Customers/{customer['Id']}"
    headers = po.headers(**{"Content-Type": "application/json-patch+json"})
    renamed = requests.patch(url, json=[{"op": "replace", "path": "/Name", "value": "Kunde 10003 ASA"}],
                             headers=headers, timeout=5)
    assert renamed.status_code == 200 and renamed.json()["Name"] == "Kunde 10003 ASA"
    archive = [{"op": "replace", "path": "/IsArchived", "value": True}]
    assert "ledger balance" in assert_problem(requests.patch(url, json=archive, headers=headers, timeout=5), 400)["detail"]
    assert po.get(f"/Customers/{customer['Id']}").json()["IsArchived"] is False


def test_projects_created_later_are_listed_by_created_filter(po: Po) -> None:
    before = po.get("/Projects", customerNos="10004").json()
    cutoff = max(p["CreatedDateTimeOffset"] for p in before)
    added = po.sandbox.control.add_project(SANDBOX_CLIENT_KEY, customer_no=10004, name="Ny jobb")
    newer = po.get("/Projects", customerNos="10004", createdDateTimeOffsetGreaterThan=cutoff).json()
    assert [p["Id"] for p in newer] == [added["Id"]]


def test_empty_list_is_204_without_body(po: Po) -> None:
    response = po.get("/Customers", customerNos="1-5")
    assert response.status_code == 204 and response.content == b""


def test_paging_walks_all_customers_without_overlap(po: Po) -> None:
    everyone = [c["Number"] for c in po.get("/Customers").json()]
    pages, number = [], 1
    while (response := po.get("/Customers", PageSize=3, PageNumber=number)).status_code == 200:
        pages.append([c["Number"] for c in response.json()])
        number += 1
    assert response.status_code == 204
    assert [n for p in pages for n in p] == everyone and all(len(p) == 3 for p in pages[:-1])


def test_open_items_show_the_balance_at_the_date(po: Po, fresh_invoice: Invoice) -> None:
    paid_on = fresh_invoice.voucher_date + timedelta(days=3)
    assert po.post_voucher(po.payment_voucher(fresh_invoice, "100.00", posting_date=paid_on)).status_code == 201

    def balance_on(day: date) -> Decimal:
        (item,) = po.get("/Customerledger/OpenItems", date=day.isoformat(), invoiceNos=str(fresh_invoice.invoice_no)).json()
        assert item["InvoiceNo"] == str(fresh_invoice.invoice_no) and item["CustomerAccountNo"] == fresh_invoice.cust_no
        return Decimal(str(item["Balance"]))

    assert balance_on(paid_on - timedelta(days=1)) == fresh_invoice.balance_before_sync
    assert balance_on(paid_on) == fresh_invoice.balance_before_sync - Decimal("100.00")


def test_lock_date_settings_show_the_clients_lock_date(po: Po) -> None:
    assert po.get("/LockDateSettings").json() == {"LockDate": "2025-01-01"}


# -- posting bank vouchers ----------------------------------------------------------------------
def test_invoice_balance_falls_after_a_matched_bank_voucher(po: Po, fresh_invoice: Invoice) -> None:
    before = Decimal(str(po.invoice(fresh_invoice.invoice_no)["Balance"]))
    created = po.post_voucher(po.payment_voucher(fresh_invoice, "123.45"))
    assert created.status_code == 201 and created.json()["Id"]
    assert created.headers["Location"].endswith(created.json()["Id"])
    assert Decimal(str(po.invoice(fresh_invoice.invoice_no)["Balance"])) == before - Decimal("123.45")


def test_duplicate_external_import_reference_is_rejected_and_applied_once(po: Po, fresh_invoice: Invoice) -> None:
    voucher = po.payment_voucher(fresh_invoice, "50.00")
    assert po.post_voucher(voucher).status_code == 201
    body = assert_problem(po.post_voucher(voucher), 409)
    assert voucher["ExternalImportReference"] in body["detail"]
    balance = Decimal(str(po.invoice(fresh_invoice.invoice_no)["Balance"]))
    assert balance == fresh_invoice.balance_before_sync - Decimal("50.00")


def test_posting_on_or_before_the_lock_date_is_rejected(po: Po, fresh_invoice: Invoice) -> None:
    lock = fresh_invoice.voucher_date + timedelta(days=10)
    po.sandbox.control.set_lock_date(SANDBOX_CLIENT_KEY, lock)
    assert po.get("/LockDateSettings").json()["LockDate"] == lock.isoformat()
    body = assert_problem(po.post_voucher(po.payment_voucher(fresh_invoice, "10.00", posting_date=lock)), 400)
    assert "lock date" in body["detail"]
    assert Decimal(str(po.invoice(fresh_invoice.invoice_no)["Balance"])) == fresh_invoice.balance_before_sync


def test_an_unknown_invoice_number_is_accepted_as_an_unmatched_open_entry(po: Po, fresh_invoice: Invoice) -> None:
    """No kinder than the contract: nothing documented says such a line is refused."""
    before = po.invoice(fresh_invoice.invoice_no)["Balance"]
    voucher = po.payment_voucher(fresh_invoice, "10.00", invoice_no="999999")
    assert po.post_voucher(voucher).status_code == 201
    assert po.invoice(fresh_invoice.invoice_no)["Balance"] == before
    day = voucher["VoucherLines"][0]["PostingDate"]
    open_items = po.get("/Customerledger/OpenItems", date=day, customerNos=str(fresh_invoice.cust_no)).json()
    assert any(o["ExternalImportReference"] == voucher["ExternalImportReference"] and o["Balance"] == -10
               for o in open_items)


def test_a_duplicate_reference_is_accepted_when_uniqueness_is_off(po: Po, fresh_invoice: Invoice) -> None:
    po.sandbox.control.set_unique_references(False)
    voucher = po.payment_voucher(fresh_invoice, "1.00")
    assert [po.post_voucher(voucher).status_code for _ in range(2)] == [201, 201]
    assert len(po.sandbox.control.vouchers_with_reference("client-demo", voucher["ExternalImportReference"])) == 2


def test_only_documented_fields_are_answered_when_asked(po: Po, fresh_invoice: Invoice) -> None:
    po.sandbox.control.set_documented_fields_only(True)
    assert set(po.invoice(fresh_invoice.invoice_no)) <= {
        "Id", "InvoiceNo", "CustomerNo", "Balance", "TotalAmount", "DueDate", "IsReversed", "CurrencyCode",
        "CurrencyExchangeRate"}


def test_unbalanced_voucher_is_rejected(po: Po, fresh_invoice: Invoice) -> None:
    voucher = po.payment_voucher(fresh_invoice, "10.00")
    voucher["VoucherLines"][0]["CurrencyAmount"] = 11.0
    assert "does not balance" in assert_problem(po.post_voucher(voucher), 400)["detail"]


# -- ProblemDetails -----------------------------------------------------------------------------
def test_not_found_is_problem_details(po: Po) -> None:
    assert "999" in assert_problem(po.get("/Customers/999"), 404)["detail"]


@pytest.mark.parametrize("path, params, field", [
    ("/Customers", {"PageSize": 20001}, "PageSize"),
    ("/Customerledger/OpenItems", {}, "date"),
    ("/Customers", {"customerNos": "abc"}, None),
])
def test_bad_queries_are_validation_problem_details(po: Po, path: str, params: dict[str, Any], field: str | None) -> None:
    body = assert_problem(po.get(path, **params), 400)
    if field:
        assert field in body["errors"]


def test_bad_voucher_body_is_validation_problem_details(po: Po) -> None:
    body = assert_problem(po.post_voucher({"CurrencyCode": "NOK", "ExternalImportReference": "x" * 51}), 400)
    assert {"VoucherDate", "ExternalImportReference"} <= body["errors"].keys()


# -- faults -------------------------------------------------------------------------------------
def test_latency_fault_delays_answers(po: Po) -> None:
    po.sandbox.control.set_faults(latency_ms=300)
    started = time.monotonic()
    assert po.get("/LockDateSettings").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_error_share_fault_answers_a_repeatable_share_with_503(po: Po) -> None:
    def run() -> list[int]:
        po.sandbox.control.set_faults(error_share=0.5, seed=11)
        return [po.get("/LockDateSettings").status_code for _ in range(40)]

    first = run()
    assert set(first) == {200, 503} and 8 <= first.count(503) <= 32
    assert run() == first  # same seed, same answers


def test_timeout_fault_holds_the_request_past_the_client_timeout(po: Po) -> None:
    po.sandbox.control.set_faults(timeout_share=1.0, hold_seconds=3)
    with pytest.raises(requests.ReadTimeout):
        po.get("/LockDateSettings", timeout=0.5)


@pytest.mark.parametrize("mode, client_sees", [("drop", requests.exceptions.ChunkedEncodingError),
                                               ("hold", requests.ReadTimeout)])
def test_lost_response_fault_commits_the_voucher_although_the_client_sees_a_failure(
        po: Po, fresh_invoice: Invoice, mode: str, client_sees: type[Exception]) -> None:
    voucher = po.payment_voucher(fresh_invoice, "75.00")
    po.sandbox.control.set_faults(lost_response_share=1.0, lost_response_mode=mode, hold_seconds=3)
    with pytest.raises((client_sees, requests.ConnectionError)):
        po.post_voucher(voucher, timeout=0.5)
    po.sandbox.control.clear_faults()
    assert len(po.sandbox.control.vouchers_with_reference(SANDBOX_CLIENT_KEY, voucher["ExternalImportReference"])) == 1
    assert Decimal(str(po.invoice(fresh_invoice.invoice_no)["Balance"])) == fresh_invoice.balance_before_sync - 75


def test_faults_leave_token_and_control_routes_alone(po: Po) -> None:
    po.sandbox.control.set_faults(error_share=1.0)
    assert request_token(po.sandbox).status_code == 200
    assert po.sandbox.control.health()
    assert po.get("/LockDateSettings").status_code == 503


def test_requests_are_counted_per_endpoint_and_status(po: Po) -> None:
    po.sandbox.control.reset_stats()
    po.get("/Customers", customerNos="10000")
    po.get("/Customers/999")
    po.get("/Customers/998")
    stats = po.sandbox.control.stats()["requests"]
    assert stats["GET /v2/Customers"] == {"200": 1}
    assert stats["GET /v2/Customers/{id}"] == {"404": 2}

"""Every PowerOffice answer or transport failure maps to exactly one error kind and reason."""
from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any

import pytest
import requests

from vb2po.errors import TerminalError, TransientError
from vb2po.poweroffice.errors import classify, parse_retry_after


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    response.headers.update(headers or {})
    response.request = requests.Request("POST", "https://goapi.poweroffice.net/v2/Vouchers/BankJournals").prepare()
    return response


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "https://tools.ietf.org/html/rfc9110", "title": title, "status": status, "detail": detail,
            "instance": "/v2/Vouchers/BankJournals", **extra}


LOCKED = problem(400, "Voucher validation error(s)", "Line 1: PostingDate 2024-12-01 is on or before the lock date 2025-01-01")
NO_INVOICE = problem(400, "Voucher validation error(s)", "Line 2: invoice with InvoiceNo 999 was not found for customer 10001")
DUPLICATE_409 = problem(409, "Duplicate voucher", "A voucher with ExternalImportReference 'vb2po-1-2-3' already exists")
DUPLICATE_400 = problem(400, "Validation error", "ExternalImportReference vb2po-1-2-3 already exists on the client")
INVALID = problem(400, "One or more validation errors occurred.", "VoucherDate: Field required",
                  errors={"VoucherDate": ["Field required"]})
APIM_429 = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 2 seconds."}

CASES = [
    # what happened, failure, kind, reason, retry_after, text that must be in the message
    ("rate limited with Retry-After", answer(429, APIM_429, {"Retry-After": "2"}), TransientError, "rate_limited", 2.0, "Rate limit is exceeded"),
    ("rate limited without Retry-After", answer(429), TransientError, "rate_limited", 1.0, "429"),
    ("service unavailable", answer(503, problem(503, "Service Unavailable", "down")), TransientError, "http_503", None, "down"),
    ("server error with Retry-After", answer(500, raw=b"oops", headers={"Retry-After": "7"}), TransientError, "http_500", 7.0, "oops"),
    ("bad gateway without body", answer(502), TransientError, "http_502", None, "502"),
    ("gateway timeout", answer(504), TransientError, "timeout", None, "504"),
    ("request timeout", answer(408), TransientError, "timeout", None, "408"),
    ("posting into a locked period", answer(400, LOCKED), TerminalError, "lock_date", None, "lock date 2025-01-01"),
    ("invoice not found", answer(400, NO_INVOICE), TerminalError, "invoice_not_found", None, "InvoiceNo 999"),
    ("duplicate reference as 409", answer(409, DUPLICATE_409), TerminalError, "duplicate_reference", None, "vb2po-1-2-3"),
    ("duplicate reference as 400", answer(400, DUPLICATE_400), TerminalError, "duplicate_reference", None, "vb2po-1-2-3"),
    ("other conflict", answer(409, problem(409, "Conflict", "in use")), TerminalError, "conflict", None, "in use"),
    ("validation problem details", answer(400, INVALID), TerminalError, "validation", None, "VoucherDate"),
    ("400 that is not JSON", answer(400, raw=b"<html>bad</html>"), TerminalError, "validation", None, "bad"),
    ("unprocessable", answer(422, problem(422, "Unprocessable", "nope")), TerminalError, "validation", None, "nope"),
    ("unauthorized", answer(401), TerminalError, "unauthorized", None, "401"),
    ("forbidden", answer(403, problem(403, "Forbidden", "no BankVoucher_Full role")), TerminalError, "forbidden", None, "BankVoucher_Full"),
    ("not found", answer(404, problem(404, "Object(s) not found", "Customer with id = 9 not found.")), TerminalError, "not_found", None, "id = 9"),
    ("unsupported media type", answer(415), TerminalError, "http_415", None, "415"),
    ("read timeout", requests.ReadTimeout("read timed out"), TransientError, "timeout", None, "read timed out"),
    ("connect timeout", requests.ConnectTimeout("connect timed out"), TransientError, "timeout", None, "connect timed out"),
    ("connection refused", requests.ConnectionError("refused"), TransientError, "connection_error", None, "refused"),
    ("connection broke mid-answer", requests.exceptions.ChunkedEncodingError("IncompleteRead"), TransientError, "connection_lost", None, "IncompleteRead"),
    ("some other request failure", requests.RequestException("weird"), TransientError, "request_failed", None, "weird"),
    ("misconfigured url", requests.exceptions.InvalidURL("no host"), TerminalError, "client_config", None, "no host"),
]


@pytest.mark.parametrize("failure, kind, reason, retry_after, in_message",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_failure_maps_to_one_error_kind(failure: Any, kind: type, reason: str, retry_after: float | None,
                                        in_message: str) -> None:
    error = classify(failure)
    assert type(error) is kind
    assert error.reason == reason
    assert in_message in str(error)
    if kind is TransientError:
        assert error.retry_after == retry_after


def test_message_names_the_call_that_failed() -> None:
    assert "POST /v2/Vouchers/BankJournals" in str(classify(answer(400, LOCKED)))


def test_retry_after_accepts_an_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("soon") is None

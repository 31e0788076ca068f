"""The one place that turns a PowerOffice answer or a transport failure into an error kind.

Transient (retry with backoff): timeouts, broken connections, 408, 429 (with `retry_after`
from `Retry-After`), 5xx. Terminal (dead-letter with the reason): everything else that is
not a success, classified from status and ProblemDetails text, since PowerOffice's
ProblemDetails carry no machine-readable error code:
- 400 naming the lock date -> `lock_date`; naming an invoice not found -> `invoice_not_found`
- 400/409 saying the ExternalImportReference already exists -> `duplicate_reference`
  (the real status is undocumented; callers treat this one as "already applied")
- other 400/422 -> `validation`; 401 -> `unauthorized`; 403 -> `forbidden`; 404 -> `not_found`
"""
from __future__ import annotations

import email.utils
import json
import time
from typing import Any, Mapping

import requests

from vb2po.errors import TerminalError, TransientError, Vb2poError

TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
CONNECTION_LOST = "connection_lost"
RATE_LIMITED = "rate_limited"
LOCK_DATE = "lock_date"
INVOICE_NOT_FOUND = "invoice_not_found"
DUPLICATE_REFERENCE = "duplicate_reference"
VALIDATION = "validation"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
CLIENT_CONFIG = "client_config"
REQUEST_FAILED = "request_failed"

DEFAULT_RATE_LIMIT_WAIT_S = 1.0  # PowerOffice: "wait at least a second"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _problem_text(problem: Mapping[str, Any]) -> str:
    """Title and detail (or APIM's `message`), for the error message and the text checks."""
    parts = [str(problem.get(k)) for k in ("title", "detail", "message") if problem.get(k)]
    errors = problem.get("errors")
    if isinstance(errors, Mapping):
        parts += [f"{field}: {msgs}" for field, msgs in errors.items()]
    return " - ".join(dict.fromkeys(parts))


def _is_duplicate(text: str) -> bool:
    lowered = text.lower()
    return "externalimportreference" in lowered and ("already exist" in lowered or "duplicate" in lowered)


def classify_problem(status: int, problem: Mapping[str, Any] | None, *, retry_after: str | None = None,
                     where: str = "PowerOffice") -> Vb2poError:
    """The error kind for an HTTP status and its decoded ProblemDetails body (may be empty)."""
    text = _problem_text(problem or {})
    message = f"{where} answered {status}" + (f": {text}" if text else "")
    lowered = text.lower()
    if status == 429:
        wait = parse_retry_after(retry_after)
        return TransientError(message, reason=RATE_LIMITED,
                              retry_after=DEFAULT_RATE_LIMIT_WAIT_S if wait is None else wait)
    if status >= 500 or status == 408:
        return TransientError(message, reason=TIMEOUT if status in (408, 504) else f"http_{status}",
                              retry_after=parse_retry_after(retry_after))
    if status in (400, 409) and _is_duplicate(text):
        return TerminalError(message, reason=DUPLICATE_REFERENCE)
    if status == 400 and "lock date" in lowered:
        return TerminalError(message, reason=LOCK_DATE)
    if status == 400 and "invoice" in lowered and "not found" in lowered:
        return TerminalError(message, reason=INVOICE_NOT_FOUND)
    reasons = {400: VALIDATION, 422: VALIDATION, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT}
    return TerminalError(message, reason=reasons.get(status, f"http_{status}"))


def classify(failure: requests.Response | BaseException) -> Vb2poError:
    """The error kind for a non-success response or an exception raised while calling."""
    if isinstance(failure, requests.Response):
        return _classify_response(failure)
    return _classify_exception(failure)


def _classify_response(response: requests.Response) -> Vb2poError:
    problem: Any = None
    if response.content:
        try:
            problem = json.loads(response.content)
        except ValueError:
            problem = {"detail": response.text[:500]}
    if not isinstance(problem, Mapping):
        problem = {"detail": str(problem)[:500]} if problem is not None else None
    request = response.request
    where = f"PowerOffice {request.method} {request.path_url.split('?')[0]}" if request is not None else "PowerOffice"
    return classify_problem(response.status_code, problem, retry_after=response.headers.get("Retry-After"), where=where)


def _classify_exception(exc: BaseException) -> Vb2poError:
    if isinstance(exc, Vb2poError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.Timeout):
        return TransientError(f"PowerOffice did not answer in time ({text})", reason=TIMEOUT)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return TransientError(f"the connection broke while PowerOffice answered ({text})", reason=CONNECTION_LOST)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
        return TerminalError(f"the PowerOffice request is misconfigured ({text})", reason=CLIENT_CONFIG)
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"could not reach PowerOffice ({text})", reason=CONNECTION_ERROR)
    if isinstance(exc, (requests.RequestException, OSError)):
        return TransientError(f"the PowerOffice request failed ({text})", reason=REQUEST_FAILED)
    return TerminalError(f"unexpected failure calling PowerOffice ({text})", reason=REQUEST_FAILED)

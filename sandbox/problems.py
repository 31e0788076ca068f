"""ProblemDetails (RFC 7807/9457): the one error shape the sandbox answers with.

PowerOffice Go is an ASP.NET API; its errors carry `type`, `title`, `status`, `detail`,
`instance`. The `type` URIs below are the ones ASP.NET Core puts in by default, so the
production client cannot come to rely on sandbox-only error codes: it must classify by
status and text, exactly as it will have to against the real service.
"""
from __future__ import annotations

from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"

_TYPE_BY_STATUS = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
    415: "https://tools.ietf.org/html/rfc9110#section-15.5.16",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    503: "https://tools.ietf.org/html/rfc9110#section-15.6.4",
    504: "https://tools.ietf.org/html/rfc9110#section-15.6.5",
}

VALIDATION_TITLE = "One or more validation errors occurred."  # ASP.NET's own wording


def problem_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "about:blank")


def problem_body(status: int, title: str, detail: str | None, instance: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(status),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra)
    return body


class Problem(Exception):
    """An answer that is an error. Raised anywhere in the sandbox, rendered in one place."""

    status: int = 400
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return problem_body(self.status, self.title, self.detail, instance, **self.extra)


class VoucherRejected(Problem):
    """The voucher breaks an accounting rule; nothing was stored."""

    status = 400
    title = "Voucher validation error(s)"


class LockDateViolation(VoucherRejected):
    """Posting into a locked period (on or before the client's lock date)."""


class DuplicateVoucher(Problem):
    """A voucher with the same ExternalImportReference already exists on the client.

    409 Conflict is the sandbox's choice: the real status is not documented (the OpenAPI
    lists only 400/401/403/404/429 for this endpoint), so the production client accepts
    409 and a 400 that says the reference already exists alike.
    """

    status = 409
    title = "Duplicate voucher"


class NotFound(Problem):
    status = 404
    title = "Object(s) not found"


class UnsupportedMediaType(Problem):
    status = 415
    title = "Unsupported Media Type"

"""PowerOffice's JSON shapes: records to PascalCase DTOs, and the bank voucher request in.

Property names follow the OpenAPI (stianwe/PowerOfficeGoV2 docs/models: CustomerDto,
ProjectDto, OutgoingInvoiceDto, CustomerLedgerEntryDto, BankVoucherPostDto,
BankVoucherLinePostDto, BankVoucherDto, LockDateSettingsDto). Only the properties the
integration reads are produced. Money stays Decimal here; the JSON renderer writes numbers.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.problems import VALIDATION_TITLE, Problem
from sandbox.records import (
    CustomerRecord,
    GeneralLedgerAccount,
    InvoiceRecord,
    LedgerEntry,
    OpenItem,
    ProjectRecord,
    VoucherDraft,
    VoucherLine,
    VoucherRecord,
)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def json_default(value: Any) -> Any:
    """JSON numbers for Decimal (exact for the 2-decimal amounts in play), ISO text for dates."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    return json.dumps(content, default=json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# What the contract documents of each shape (../shared/domain/poweroffice-go.md): with the sandbox's
# `documented_fields_only` switch on, answers carry nothing else, so a client that reads an
# undocumented field fails in tests the way it could fail against the real service.
DOCUMENTED_FIELDS: dict[str, frozenset[str]] = {
    "customer": frozenset({"Id", "Number", "ExternalNumber", "SubledgerAccountId", "IsArchived", "IsActive"}),
    "project": frozenset({"Id", "CustomerNo", "DenyTimeTracking"}),
    "invoice": frozenset({"Id", "InvoiceNo", "CustomerNo", "Balance", "TotalAmount", "DueDate", "IsReversed",
                          "CurrencyCode", "CurrencyExchangeRate"}),  # (the rate: OutgoingInvoiceDto in the OpenAPI)
    "open_item": frozenset({"Balance", "InvoiceNo", "ExternalImportReference"}),
    "ledger_entry": frozenset({"ExternalImportReference", "Amount", "InvoiceNo", "CustomerAccountNo"}),
    "account": frozenset({"Id", "AccountNo"}),
}


def documented(shape: str, dto: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dto.items() if k in DOCUMENTED_FIELDS[shape]}


def account_dto(a: GeneralLedgerAccount) -> dict[str, Any]:
    return {"Id": a.id, "AccountNo": a.account_no, "Name": a.name, "IsActive": a.is_active}


def customer_dto(c: CustomerRecord) -> dict[str, Any]:
    return {
        "Id": c.id, "Number": c.number, "Name": c.name, "ExternalNumber": c.external_number,
        "SubledgerAccountId": c.subledger_account_id, "IsArchived": c.is_archived, "IsActive": not c.is_archived,
        "CurrencyCode": c.currency_code, "LastChangedDateTimeOffset": _stamp(c.last_changed),
    }


def project_dto(p: ProjectRecord) -> dict[str, Any]:
    return {
        "Id": p.id, "Code": p.code, "Name": p.name, "CustomerId": p.customer_id, "CustomerNo": p.customer_no,
        "DenyTimeTracking": p.deny_time_tracking, "IsActive": p.is_active,
        "CreatedDateTimeOffset": _stamp(p.created), "LastChangedDateTimeOffset": _stamp(p.last_changed),
    }


def invoice_dto(i: InvoiceRecord) -> dict[str, Any]:
    """Balance in the client currency (as documented), TotalAmount in the invoice's own."""
    return {
        "Id": str(i.id), "InvoiceNo": i.invoice_no, "CustomerId": i.customer_id, "CustomerNo": i.customer_no,
        "TotalAmount": i.total_amount, "Balance": i.in_client_currency(i.balance), "CurrencyCode": i.currency_code,
        "CurrencyExchangeRate": i.exchange_rate, "TotalPostedAmount": i.in_client_currency(i.total_amount),
        "VoucherDate": _day(i.voucher_date), "DueDate": _day(i.due_date), "VoucherNo": i.voucher_no,
        "IsReversed": i.is_reversed, "BalanceLastChangedDateTimeOffset": _stamp(i.balance_last_changed),
    }


def open_item_dto(o: OpenItem) -> dict[str, Any]:
    return {
        "Id": o.id, "VoucherId": str(o.voucher_id), "VoucherNo": o.voucher_no, "VoucherType": o.voucher_type,
        "CustomerId": o.customer_id, "CustomerAccountNo": o.customer_no, "CustomerName": o.customer_name,
        "InvoiceNo": o.invoice_no, "PostingDate": _day(o.posting_date), "VoucherDate": _day(o.voucher_date),
        "DueDate": _day(o.due_date), "Amount": o.amount, "CurrencyAmount": o.amount, "Balance": o.balance,
        "CurrencyCode": o.currency_code, "ExternalImportReference": o.external_import_reference,
    }


def ledger_entry_dto(e: LedgerEntry) -> dict[str, Any]:
    return {
        "VoucherId": str(e.voucher_id), "VoucherNo": e.voucher_no, "CustomerAccountNo": e.customer_no,
        "PostingDate": _day(e.posting_date), "Amount": e.amount, "CurrencyAmount": e.amount,
        "CurrencyCode": e.currency_code, "InvoiceNo": e.invoice_no, "ExternalImportReference": e.external_import_reference,
        "IsCreatedByCurrentIntegration": True,
    }


def voucher_dto(v: VoucherRecord) -> dict[str, Any]:
    d = v.draft
    return {
        "Id": str(v.id), "VoucherNo": v.voucher_no, "VoucherDate": _day(d.voucher_date),
        "CurrencyCode": d.currency_code, "Description": d.description,
        "ExternalImportReference": d.external_import_reference, "ImportedVoucherNo": d.imported_voucher_no,
        "IsReversed": False, "CreatedDateTimeOffset": _stamp(v.created),
        "VoucherLines": [
            {
                "AccountId": line.account_id, "PostingDate": _day(line.posting_date),
                "CurrencyAmount": line.currency_amount, "Amount": line.currency_amount,
                "InvoiceNo": line.invoice_no, "Description": line.description,
                "CurrencyCode": line.currency_code or d.currency_code, "CurrencyExchangeRate": line.exchange_rate,
                "CustomMatchingReference": line.custom_matching_reference, "Cid": line.cid,
                "ExternalLineReference": line.external_line_reference,
            }
            for line in d.lines
        ],
    }


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class BankVoucherLineIn(_In):
    """BankVoucherLinePostDto: PostingDate and AccountId are required there."""

    AccountId: int
    PostingDate: date
    CurrencyAmount: Decimal
    InvoiceNo: str | None = Field(None, max_length=200)
    CurrencyCode: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    CurrencyExchangeRate: Decimal | None = Field(None, gt=0)
    Description: str | None = None
    CustomMatchingReference: str | None = None
    Cid: str | None = None
    ExternalLineReference: str | None = None
    VatId: int | None = None  # listed as required in the OpenAPI; irrelevant to bank lines, so optional here


class BankVoucherIn(_In):
    """BankVoucherPostDto: VoucherDate and CurrencyCode are required."""

    VoucherDate: date
    CurrencyCode: str = Field(pattern=r"^[A-Z]{3}$")
    Description: str | None = None
    ExternalImportReference: str | None = Field(None, max_length=50)
    ImportedVoucherNo: int | None = None
    VoucherLines: list[BankVoucherLineIn] = Field(default_factory=list)


def validation_problem(errors: dict[str, list[str]]) -> Problem:
    """ASP.NET's ValidationProblemDetails: 400 with an `errors` map of field -> messages."""
    summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return Problem(summary, status=400, title=VALIDATION_TITLE, errors=errors)


def errors_from_pydantic(exc: ValidationError, prefix: str = "") -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        errors.setdefault(loc or "$", []).append(err["msg"])
    return errors


def parse_bank_voucher(payload: Any) -> VoucherDraft:
    """Validate a BankVoucherPostDto (already decoded JSON) into a draft for the ledger."""
    try:
        dto = BankVoucherIn.model_validate(payload)
    except ValidationError as exc:
        raise validation_problem(errors_from_pydantic(exc)) from None
    lines = tuple(
        VoucherLine(
            account_id=line.AccountId, posting_date=line.PostingDate, currency_amount=line.CurrencyAmount,
            invoice_no=line.InvoiceNo or None, description=line.Description,
            currency_code=line.CurrencyCode, exchange_rate=line.CurrencyExchangeRate,
            custom_matching_reference=line.CustomMatchingReference, cid=line.Cid,
            external_line_reference=line.ExternalLineReference,
        )
        for line in dto.VoucherLines
    )
    return VoucherDraft(
        voucher_date=dto.VoucherDate, currency_code=dto.CurrencyCode, lines=lines,
        external_import_reference=dto.ExternalImportReference or None, description=dto.Description,
        imported_voucher_no=dto.ImportedVoucherNo,
    )


def decode_json(body: bytes) -> Any:
    """JSON with exact decimals (floats become Decimal), or a 400 ProblemDetails."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation_problem({"$": [f"The body is not valid JSON: {exc}"]}) from None

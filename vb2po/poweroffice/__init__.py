"""PowerOffice Go v2: the client the consumer uses, its Protocol, models and error mapping.

The in-memory fake for tests lives in `tests/fakes/poweroffice.py` (outside the package: it pulls in the
sandbox's ledger, which production code does not need).
"""
from vb2po.poweroffice.api import PowerOfficeApi
from vb2po.poweroffice.client import PowerOfficeClient, bank_voucher_payload
from vb2po.poweroffice.errors import classify, classify_problem
from vb2po.poweroffice.models import (
    ALREADY_APPLIED,
    APPLIED,
    Customer,
    OpenItem,
    OutgoingInvoice,
    PaymentPosting,
    PostingResult,
    Project,
)

__all__ = [
    "ALREADY_APPLIED", "APPLIED", "Customer", "OpenItem", "OutgoingInvoice", "PaymentPosting", "PostingResult",
    "PowerOfficeApi", "PowerOfficeClient", "Project", "bank_voucher_payload", "classify", "classify_problem",
]

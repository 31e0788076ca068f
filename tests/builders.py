"""Small builders for test rows and settings."""
from __future__ import annotations

from decimal import Decimal

from devstack.dataset import VOUCHER_TYPE_PAYMENT, CustTrRow


def payment_row(
    jno: int, entno: int, *, ch_dt: int = 20260315, ch_tmms: int = 36_000_000, amount: str = "-100.00",
    invoice_no: str = "100000", cust_no: int = 10000, vo_dt: int | None = None, vo_tp: int = VOUCHER_TYPE_PAYMENT,
) -> CustTrRow:
    minute = ch_tmms // 60_000
    return CustTrRow(
        jno=jno, entno=entno, cust_no=cust_no, vo_no=jno * 100 + entno, vo_dt=vo_dt or ch_dt, vo_tp=vo_tp,
        txt=f"Innbetaling {invoice_no}", am=Decimal(amount), invo_no=invoice_no, cur="NOK", due_dt=0,
        cre_dt=ch_dt, cre_tm=(minute // 60) * 100 + minute % 60, ch_dt=ch_dt,
        ch_tm=(minute // 60) * 100 + minute % 60, ch_tmms=ch_tmms,
    )

"""`vb2po` with a fault planted, for the crash guard's end-to-end test (never shipped): the
process dies on the spot, as on a driver segfault or the kernel's OOM killer, whenever it applies
the payment `VB2PO_TEST_CRASH_ON` names ("JNo:EntNo"). No exception, no clean-up, no commit."""
from __future__ import annotations

import os
import sys

from consumer import payments
from vb2po.cli import main

TARGET = os.environ["VB2PO_TEST_CRASH_ON"]
_apply = payments.PaymentApplier.apply


def apply_or_die(self, event, *args, **kwargs):
    if f"{event.payload.jno}:{event.payload.entno}" == TARGET:
        os._exit(139)
    return _apply(self, event, *args, **kwargs)


payments.PaymentApplier.apply = apply_or_die

if __name__ == "__main__":
    sys.exit(main())

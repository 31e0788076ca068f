"""Credit-block events while their sync is not applied: consumed, counted, otherwise ignored."""
from __future__ import annotations

from schemas.events import CreditBlockEvent
from vb2po import metrics


class IgnoredCreditBlocks:
    def apply(self, event: CreditBlockEvent) -> str:
        metrics.EVENTS_SKIPPED.labels("credit_block", "sync_off").inc()
        return "ignored"

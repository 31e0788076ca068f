"""Change polling of one company's payments: read pages after the cursor, publish each page
with the moved cursor in one transaction."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from producer.company import CompanySource
from producer.cursor import advance, visma_clock
from producer.publisher import Outgoing, Publisher
from producer.rows import BadRow, PaymentRow, payment_event
from producer.state import CompanyState
from schemas.codec import encode
from schemas.events import customer_key
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import TopicSettings
from vb2po.visma.queries import pending_payments_page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOutcome:
    rows_read: int = 0
    published: int = 0
    bad_rows: int = 0
    newest_change: datetime | None = None


class PaymentPoller:
    def __init__(
        self,
        source: CompanySource,
        publisher: Publisher,
        topics: TopicSettings,
        zone: ZoneInfo,
        state: CompanyState,
        *,
        page_size: int = 2000,
        settle_s: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.source = source
        self.publisher = publisher
        self.topics = topics
        self.zone = zone
        self.state = state
        self.page_size = page_size
        self.settle_s = settle_s
        self.clock = clock

    @property
    def company_no(self) -> int:
        return self.source.company.company_no

    def poll_once(self) -> PollOutcome:
        """Publish everything pending up to the settle bound, page by page."""
        sel = self.source.selection
        upper = visma_clock(self.clock().astimezone(self.zone), self.settle_s, sel.time_column)
        total = PollOutcome()
        while True:
            sql, params = pending_payments_page(
                self.source.db.dialect, sel, self.state.payments_cursor, upper, self.page_size
            )
            rows = [PaymentRow.from_tuple(r) for r in self.source.db.query(sql, params)]
            if not rows:
                return total
            page = self._publish_page(rows)
            total = PollOutcome(
                rows_read=total.rows_read + page.rows_read,
                published=total.published + page.published,
                bad_rows=total.bad_rows + page.bad_rows,
                newest_change=page.newest_change or total.newest_change,
            )
            if len(rows) < self.page_size:
                return total

    def _publish_page(self, rows: list[PaymentRow]) -> PollOutcome:
        now = self.clock()
        company = self.source.company
        messages: list[Outgoing] = []
        cursor = self.state.payments_cursor
        published = bad = 0
        newest = None
        for row in rows:
            try:
                event = payment_event(
                    row, company_no=company.company_no, currency=company.currency,
                    time_column=self.source.selection.time_column, zone=self.zone, now=now,
                )
                messages.append(Outgoing(self.topics.payments, customer_key(company.company_no, event.payload.customer_no), encode(event)))
                published += 1
                newest = event.occurred_at
            except BadRow as exc:
                log.warning("bad row to dead letters: %s", exc)
                letter = DeadLetter(stage="producer", reason=exc.reason, error=str(exc),
                                    company_no=company.company_no, source_key=row.key)
                messages.append(Outgoing(self.topics.dead_letters, f"{company.company_no}:{row.key}".encode(), letter.encode()))
                bad += 1
            if row.jno is not None and row.entno is not None:
                cursor = advance(cursor, row.position())
        new_state = replace(self.state, payments_cursor=cursor)
        self.publisher.publish(messages, Outgoing(self.topics.producer_state, new_state.key(), new_state.encode()))
        self.state = new_state  # only after the transaction committed
        return PollOutcome(rows_read=len(rows), published=published, bad_rows=bad, newest_change=newest)

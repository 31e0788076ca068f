"""Change polling of one company's payments, and the safety-net sweep.

`poll_once` reads pages after the cursor up to the settle bound and publishes each page with
the moved cursor in one transaction. `sweep_once` re-finds every still-unmarked payment at or
behind the cursor (a transaction that committed late with an old change time, a restored
backup, a marker wiped by hand) and publishes it again under the same event id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from producer.company import CompanySource, yyyymmdd
from producer.cursor import advance, is_after, visma_clock
from producer.publisher import Outgoing, Publisher
from producer.rows import BadRow, PaymentRow, payment_event, visma_change_time, visma_date
from producer.state import CompanyState
from schemas.codec import encode
from schemas.events import customer_key, payment_event_id
from vb2po import metrics
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import TopicSettings
from vb2po.visma.queries import Position, pending_payments_page, unmarked_payments_page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOutcome:
    rows_read: int = 0
    published: int = 0
    bad_rows: int = 0
    newest_change: datetime | None = None
    # (JNo, EntNo) of each payment published; filled only on request (fetch now waits on them),
    # so a long catch-up poll does not hold a key per event in memory.
    published_keys: tuple[tuple[int, int], ...] = ()

    def __add__(self, other: "PollOutcome") -> "PollOutcome":
        return PollOutcome(
            self.rows_read + other.rows_read, self.published + other.published, self.bad_rows + other.bad_rows,
            other.newest_change or self.newest_change, self.published_keys + other.published_keys,
        )


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
        sweep_grace_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.source = source
        self.publisher = publisher
        self.topics = topics
        self.zone = zone
        self.state = state
        self.page_size = page_size
        self.settle_s = settle_s
        self.sweep_grace_s = max(sweep_grace_s, settle_s)
        self.clock = clock

    @property
    def company_no(self) -> int:
        return self.source.company.company_no

    def poll_once(self, *, collect_keys: bool = False) -> PollOutcome:
        """Publish everything pending up to the settle bound, page by page."""
        sel = self.source.selection
        upper = visma_clock(self.clock().astimezone(self.zone), self.settle_s, sel.time_column)
        counts = PollOutcome()
        keys: list[tuple[int, int]] = []
        while True:
            sql, params = pending_payments_page(self.source.db.dialect, sel, self.state.payments_cursor, upper, self.page_size)
            rows = [PaymentRow.from_tuple(r) for r in self.source.db.query(sql, params)]
            if not rows:
                if counts.rows_read == 0:
                    self._skip_idle_stretch(upper)
                break
            page = self._publish(rows, move_cursor=True)
            if collect_keys:
                keys.extend(page.published_keys)
            counts += replace(page, published_keys=())
            if len(rows) < self.page_size:
                break
        return replace(counts, published_keys=tuple(keys))

    def _skip_idle_stretch(self, upper: tuple[int, int]) -> None:
        """Nothing is pending up to `upper`: move the cursor up to the start of the day before, so
        an idle poll seeks from a recent position instead of walking everything since the last
        payment (or, on a first start where every row is marked, the whole table). Keeping a day
        behind leaves late commits of that day to the normal poll; older ones are the sweep's."""
        floor = yyyymmdd(visma_date(upper[0]) - timedelta(days=1))
        cursor = self.state.payments_cursor
        if cursor is not None and cursor.ch_dt >= floor:
            return
        new_state = replace(self.state, payments_cursor=Position(floor, 0, 0, 0))
        self.publisher.publish([Outgoing(self.topics.producer_state, new_state.key(), new_state.encode())])
        self.state = new_state

    def sweep_once(self) -> PollOutcome:
        """Publish again every unmarked payment the cursor has passed and that is older than the
        grace period (younger ones may simply still be on their way through Kafka)."""
        sel = self.source.selection
        cutoff = self.clock() - timedelta(seconds=self.sweep_grace_s)
        total = PollOutcome()
        after_key = None
        while True:
            sql, params = unmarked_payments_page(self.source.db.dialect, sel, after_key, self.page_size)
            rows = [PaymentRow.from_tuple(r) for r in self.source.db.query(sql, params)]
            if not rows:
                return total
            after_key = (int(rows[-1].jno), int(rows[-1].entno))
            cursor = self.state.payments_cursor
            behind = [
                r for r in rows
                if cursor is not None and not is_after(r.position(), cursor)
                and visma_change_time(r.ch_dt, r.ch_time, sel.time_column, self.zone) <= cutoff
            ]
            if behind:
                total += self._publish(behind, move_cursor=False)
            if len(rows) < self.page_size:
                return total

    def _publish(self, rows: list[PaymentRow], *, move_cursor: bool) -> PollOutcome:
        now = self.clock()
        company = self.source.company
        messages: list[Outgoing] = []
        cursor = self.state.payments_cursor
        bad_keys: dict[str, str] = {}  # row key -> reason
        published: list[tuple[int, int]] = []
        newest = None
        for row in rows:
            try:
                event = payment_event(
                    row, company_no=company.company_no, currency=company.currency,
                    time_column=self.source.selection.time_column, zone=self.zone, now=now,
                )
                messages.append(Outgoing(self.topics.payments, customer_key(company.company_no, event.payload.customer_no), encode(event)))
                published.append((event.payload.jno, event.payload.entno))
                newest = event.occurred_at
            except BadRow as exc:
                if row.key not in self.state.dead_lettered:  # the sweep finds bad rows again and again
                    log.warning("bad row to dead letters: %s", exc, extra={
                        "event_id": _event_id_of(company.company_no, row), "company": company.company_no,
                        "customer": row.cust_no, "source_key": row.key, "reason": exc.reason})
                    letter = DeadLetter(stage="producer", reason=exc.reason, error=str(exc),
                                        company_no=company.company_no, source_key=row.key)
                    messages.append(Outgoing(self.topics.dead_letters, f"{company.company_no}:{row.key}".encode(), letter.encode()))
                    bad_keys[row.key] = exc.reason
            if move_cursor and row.jno is not None and row.entno is not None:
                cursor = advance(cursor, row.position())
        new_state = replace(self.state, payments_cursor=cursor)
        if bad_keys:
            new_state = new_state.with_dead_lettered(set(bad_keys))
        if new_state != self.state:
            messages.append(Outgoing(self.topics.producer_state, new_state.key(), new_state.encode()))
        if messages:
            self.publisher.publish(messages)
        self.state = new_state  # only after the transaction committed
        for reason in bad_keys.values():
            metrics.BAD_ROWS.labels(str(company.company_no), reason).inc()
        return PollOutcome(rows_read=len(rows), published=len(published), bad_rows=len(bad_keys), newest_change=newest,
                           published_keys=tuple(published))


def _event_id_of(company_no: int, row: PaymentRow) -> str | None:
    """The id the row's event has once the row is fixed (for the log line of a bad row)."""
    try:
        return str(payment_event_id(company_no, int(row.jno), int(row.entno)))
    except (TypeError, ValueError):
        return None

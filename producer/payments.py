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

from producer.cursor import advance, is_after, visma_clock
from producer.publisher import Outgoing, Publisher
from producer.reading import UnreadableRow, read_page
from producer.rows import BadRow, PaymentRow, RowReader, row_position
from producer.state import CompanyState, StateCell
from schemas.codec import encode
from schemas.events import customer_key, payment_event_id
from vb2po import metrics
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import TopicSettings
from vb2po.visma.clock import visma_date, yyyymmdd
from vb2po.visma.company import CompanySource
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
        state: CompanyState | StateCell,
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
        self.cell = state if isinstance(state, StateCell) else StateCell(state)
        self.page_size = page_size
        self.settle_s = settle_s
        self.sweep_grace_s = max(sweep_grace_s, settle_s)
        self.clock = clock
        self.reader = RowReader(source.company.company_no, source.rule, source.currencies,
                                source.selection.time_column, zone)

    @property
    def company_no(self) -> int:
        return self.source.company.company_no

    @property
    def state(self) -> CompanyState:
        return self.cell.state

    @state.setter
    def state(self, state: CompanyState) -> None:
        self.cell.state = state

    def poll_once(self, *, collect_keys: bool = False) -> PollOutcome:
        """Publish everything pending up to the settle bound, page by page."""
        sel = self.source.selection
        upper = visma_clock(self.clock().astimezone(self.zone), self.settle_s, sel.time_column)
        counts = PollOutcome()
        keys: list[tuple[int, int]] = []
        while True:
            cursor = self.state.payments_cursor
            rows = read_page(self.source.db, sel, lambda keys_only: pending_payments_page(
                self.source.db.dialect, sel, cursor, upper, self.page_size, keys_only=keys_only), self.company_no)
            if not rows:
                if counts.rows_read == 0:
                    self._skip_idle_stretch(upper)
                break
            page = self._publish(rows, move_cursor=True)
            if collect_keys:
                keys.extend(page.published_keys)
            counts += replace(page, published_keys=())
            if len(rows) < self.page_size or self.state.payments_cursor == cursor:
                break  # (a full page that did not move the cursor would be read again and again)
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
            last = after_key
            rows = read_page(self.source.db, sel, lambda keys_only: unmarked_payments_page(
                self.source.db.dialect, sel, last, self.page_size, keys_only=keys_only), self.company_no)
            if not rows:
                return total
            after_key = (int(rows[-1].jno), int(rows[-1].entno))
            behind = [r for r in rows if self._sweepable(r, cutoff)]
            if behind:
                total += self._publish(behind, move_cursor=False)
            if len(rows) < self.page_size:
                return total

    def _sweepable(self, row: PaymentRow | UnreadableRow, cutoff: datetime) -> bool:
        """Behind the cursor and older than the grace period; a row whose position or change time
        cannot be read is swept (it is dead-lettered, once)."""
        cursor = self.state.payments_cursor
        if cursor is None:
            return False
        position = row.position() if isinstance(row, UnreadableRow) else row_position(row)
        if position is not None and is_after(position, cursor):
            return False
        if isinstance(row, UnreadableRow):
            return True
        try:
            return self.reader.change_time(row) <= cutoff
        except BadRow:
            return True

    def _publish(self, rows: list[PaymentRow | UnreadableRow], *, move_cursor: bool) -> PollOutcome:
        now = self.clock()
        company_no = self.company_no
        messages: list[Outgoing] = []
        cursor = self.state.payments_cursor
        bad_keys: dict[str, str] = {}  # row key -> reason
        recovered: set[str] = set()  # rows dead-lettered before that read well now
        published: list[tuple[int, int]] = []
        newest = None
        for row in rows:
            try:
                if isinstance(row, UnreadableRow):
                    raise BadRow("unreadable_row", f"company {company_no} {row.key}: {row.error}")
                event = self.reader.event(row, now)
                messages.append(Outgoing(self.topics.payments, customer_key(company_no, event.payload.customer_no), encode(event)))
                published.append((event.payload.jno, event.payload.entno))
                newest = event.occurred_at
                if row.key in self.state.dead_lettered:
                    recovered.add(row.key)
            except BadRow as exc:
                if row.key not in self.state.dead_lettered:  # the sweep finds bad rows again and again
                    log.warning("bad row to dead letters: %s", exc, extra={
                        "event_id": _event_id_of(company_no, row), "company": company_no,
                        "customer": getattr(row, "cust_no", None), "source_key": row.key, "reason": exc.reason})
                    letter = DeadLetter(stage="producer", reason=exc.reason, error=str(exc),
                                        company_no=company_no, source_key=row.key)
                    messages.append(Outgoing(self.topics.dead_letters, f"{company_no}:{row.key}".encode(), letter.encode()))
                    bad_keys[row.key] = exc.reason
            if move_cursor:
                position = row.position() if isinstance(row, UnreadableRow) else row_position(row)
                if position is not None:
                    cursor = advance(cursor, position)
        new_state = replace(self.state, payments_cursor=cursor)
        if bad_keys or recovered:
            new_state = new_state.with_dead_lettered(set(bad_keys), forget=recovered)
        if new_state != self.state:
            messages.append(Outgoing(self.topics.producer_state, new_state.key(), new_state.encode()))
        if messages:
            self.publisher.publish(messages)
        self.state = new_state  # only after the transaction committed
        for reason in bad_keys.values():
            metrics.BAD_ROWS.labels(str(company_no), reason).inc()
        return PollOutcome(rows_read=len(rows), published=len(published), bad_rows=len(bad_keys), newest_change=newest,
                           published_keys=tuple(published))


def _event_id_of(company_no: int, row: PaymentRow | UnreadableRow) -> str | None:
    """The id the row's event has once the row is fixed (for the log line of a bad row)."""
    try:
        return str(payment_event_id(company_no, int(row.jno), int(row.entno)))
    except (TypeError, ValueError):
        return None

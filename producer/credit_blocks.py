"""Credit-block polling of one company: an event whenever a customer's `Actor.CrSusp` differs
from the state last published for it, a snapshot of every customer on first start, and on
request a re-assertion of every standing block (blocking is a state, not an edge: projects
created since the block began get blocked too).

Every customer is compared at the first poll and at each re-assertion. In between, only the
customers that can change what was published are read: those blocked now (CrSusp not 0) and
those last published as blocked (a lift). A company's hundred customers cost one short query
every interval instead of a read of all of them, which matters for a producer with hundreds
of companies; a customer created unblocked in between gets its first (unblocked, so
inconsequential) event at the next full comparison.

No Actor row can stop the scan: a row that cannot be read or is no credit block (CrSusp other
than 0/1, a customer number out of range) is dead-lettered once, remembered in the company's
state record across restarts, and the scan goes on."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, cast
from zoneinfo import ZoneInfo

from producer.payments import PollOutcome
from producer.publisher import Outgoing, Publisher
from producer.rows import BadRow
from producer.state import CompanyState, CustomerBlock, StateCell, encode_block
from producer.state import customer_key as state_key
from schemas.codec import encode
from schemas.events import (
    SCHEMA_VERSION,
    CreditBlockEvent,
    CreditBlockPayload,
    Source,
    credit_block_event_id,
    customer_key,
)
from vb2po import metrics
from vb2po.errors import TerminalError
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import ProducerSettings, TopicSettings
from vb2po.visma.clock import visma_change_time
from vb2po.visma.company import CompanySource
from vb2po.visma.money import BadAmount, to_money
from vb2po.visma.queries import MAX_IN_LIST, customer_by_act_no, customers_page

log = logging.getLogger(__name__)
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class ActorRow:
    act_no: int
    cust_no: Any
    cr_susp: object
    cr_lmt: object
    ch_dt: object
    ch_tm: object
    unreadable: str | None = None  # why the driver could not read the row's columns

    @property
    def key(self) -> str:
        return f"ActNo={self.act_no}"


def decide(previous: CustomerBlock | None, blocked: bool, reassert: bool) -> tuple[CustomerBlock, bool] | None:
    """What to publish for one customer: (new state, is re-assertion), or None for nothing."""
    if previous is None:
        return CustomerBlock(blocked, 1), False  # first sight: snapshot
    if previous.blocked != blocked:
        return CustomerBlock(blocked, previous.seq + 1), False
    if reassert and blocked:
        return previous, True
    return None


class CreditBlockPoller:
    def __init__(
        self,
        source: CompanySource,
        publisher: Publisher,
        topics: TopicSettings,
        zone: ZoneInfo,
        blocks: dict[int, CustomerBlock],
        *,
        cell: StateCell | None = None,
        page_size: int = ProducerSettings().page_size,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.source = source
        self.publisher = publisher
        self.topics = topics
        self.zone = zone
        self.blocks = dict(blocks)
        self.cell = cell or StateCell(CompanyState(source.company.company_no))
        self.page_size = page_size
        self.clock = clock
        self.compared_all = False  # every customer compared since this poller was made

    @property
    def company_no(self) -> int:
        return self.source.company.company_no

    def poll_once(self, *, reassert: bool = False) -> PollOutcome:
        if reassert or not self.compared_all:
            total, _ = self._scan({}, reassert)
            self.compared_all = True
            return total
        total, seen = self._scan({"blocked_only": True}, reassert=False)
        lifted = sorted(no for no, b in self.blocks.items() if b.blocked and no not in seen)
        for first in range(0, len(lifted), MAX_IN_LIST):
            more, _ = self._scan({"customer_nos": lifted[first:first + MAX_IN_LIST]}, reassert=False)
            total += more
        return total

    def _scan(self, which: dict, reassert: bool) -> tuple[PollOutcome, set[int]]:
        """Publish what changed among the customers `which` selects (customers_page's filters);
        also returns the customer numbers read."""
        total = PollOutcome()
        seen: set[int] = set()
        after = None
        while True:
            rows = self._read_page(after, which)
            if not rows:
                return total, seen
            after = rows[-1].act_no
            for row in rows:
                try:
                    seen.add(int(row.cust_no))
                except (TypeError, ValueError):
                    pass
            total += self._publish(rows, reassert)
            if len(rows) < self.page_size:
                return total, seen

    def _read_page(self, after: int | None, which: dict) -> list[ActorRow]:
        """One page of customers; a page the driver cannot read is read key by key (see producer.reading)."""
        db = self.source.db
        sql, params = customers_page(db.dialect, after, self.page_size, **which)
        try:
            return [ActorRow(*r) for r in db.query(sql, params)]
        except TerminalError as exc:
            log.warning("company %s: a page of Actor could not be read (%s); reading it row by row", self.company_no, exc,
                        extra={"company": self.company_no})
        sql, params = customers_page(db.dialect, after, self.page_size, keys_only=True, **which)
        rows = []
        for (act_no,) in db.query(sql, params):
            one_sql, one_params = customer_by_act_no(db.dialect, act_no)
            try:
                rows += [ActorRow(*r) for r in db.query(one_sql, one_params)]
            except TerminalError as exc:
                rows.append(ActorRow(int(act_no), None, None, None, None, None, unreadable=str(exc)[:500]))
        return rows

    def _publish(self, rows: list[ActorRow], reassert: bool) -> PollOutcome:
        now = self.clock()
        messages: list[Outgoing] = []
        changed: dict[int, CustomerBlock] = {}
        published = 0
        bad: dict[str, str] = {}
        recovered: set[str] = set()
        remembered = self.cell.state.dead_lettered
        for row in rows:
            try:
                built = self._event(row, reassert, now)
            except BadRow as exc:
                if row.key not in remembered:
                    log.warning("bad customer row to dead letters: %s", exc, extra={
                        "company": self.company_no, "source_key": row.key, "reason": exc.reason})
                    letter = DeadLetter(stage="producer", reason=exc.reason, error=str(exc),
                                        company_no=self.company_no, source_key=row.key)
                    messages.append(Outgoing(self.topics.dead_letters, f"{self.company_no}:{row.key}".encode(), letter.encode()))
                    bad[row.key] = exc.reason
                continue
            if row.key in remembered:
                recovered.add(row.key)
            if built is None:
                continue
            event, state = built
            customer = event.payload.customer_no
            messages.append(Outgoing(self.topics.credit_blocks, customer_key(self.company_no, customer), encode(event)))
            published += 1
            if not event.payload.reasserted:
                changed[customer] = state
                messages.append(Outgoing(self.topics.producer_state, state_key(self.company_no, customer), encode_block(state)))
        new_state = self.cell.state.with_dead_lettered(set(bad), forget=recovered) if bad or recovered else self.cell.state
        if new_state != self.cell.state:
            messages.append(Outgoing(self.topics.producer_state, new_state.key(), new_state.encode()))
        if messages:
            self.publisher.publish(messages)
        self.blocks.update(changed)  # only after the transaction committed
        self.cell.state = new_state
        for reason in bad.values():
            metrics.BAD_ROWS.labels(str(self.company_no), reason).inc()
        return PollOutcome(rows_read=len(rows), published=published, bad_rows=len(bad))

    def _event(self, row: ActorRow, reassert: bool, now: datetime) -> tuple[CreditBlockEvent, CustomerBlock] | None:
        """The event to publish for this row (None: nothing changed); BadRow for a row that is no credit block."""
        try:
            customer_no, blocked, limit = self._read(row)
            decision = decide(self.blocks.get(customer_no), blocked, reassert)
            if decision is None:
                return None
            state, reasserted = decision
            try:
                occurred_at = visma_change_time(row.ch_dt, row.ch_tm, "ChTm", self.zone)
            except (TypeError, ValueError) as exc:
                raise BadRow("invalid_change_time", f"company {self.company_no} {row.key}: {exc}") from None
            event = CreditBlockEvent(
                event_id=credit_block_event_id(self.company_no, customer_no, state.seq, state.blocked),
                schema_version=SCHEMA_VERSION,
                source=Source(company_no=self.company_no, table="Actor", key=row.key),
                occurred_at=occurred_at,
                produced_at=now,
                payload=CreditBlockPayload(
                    company_no=self.company_no, customer_no=customer_no, actor_no=row.act_no, blocked=state.blocked,
                    credit_limit=limit, sequence=state.seq, reasserted=reasserted,
                ),
            )
            return event, state
        except BadRow:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the row holds, it is this row's problem
            raise BadRow("invalid_event", f"company {self.company_no} {row.key}: {type(exc).__name__}: "
                                          f"{str(exc)[:500]}") from exc

    def _read(self, row: ActorRow) -> tuple[int, bool, object]:
        where = f"company {self.company_no} {row.key}"
        if row.unreadable is not None:
            raise BadRow("unreadable_row", f"{where}: {row.unreadable}")
        try:
            customer_no = int(cast(Any, row.cust_no))  # (whatever the driver gave: int() says if it is a number)
            crsusp = int(cast(Any, row.cr_susp))
        except (TypeError, ValueError):
            raise BadRow("unreadable_credit_block", f"{where}: CustNo {str(row.cust_no)[:20]!r}, "
                                                    f"CrSusp {str(row.cr_susp)[:20]!r}") from None
        if not 0 < customer_no <= INT_MAX:
            raise BadRow("missing_customer", f"{where}: customer number {customer_no} is no customer")
        if crsusp not in (0, 1):
            raise BadRow("unreadable_credit_block", f"{where}: CrSusp is {crsusp}; a credit block is 0 or 1")
        try:
            return customer_no, crsusp == 1, to_money(row.cr_lmt if row.cr_lmt is not None else 0)
        except BadAmount as exc:
            raise BadRow("unreadable_amount", f"{where}: credit limit {exc}") from exc

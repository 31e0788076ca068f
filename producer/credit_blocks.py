"""Credit-block polling of one company: an event whenever a customer's `Actor.CrSusp` differs
from the state last published for it, a snapshot of every customer on first start, and on
request a re-assertion of every standing block (blocking is a state, not an edge: projects
created since the block began get blocked too)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from producer.company import CompanySource
from producer.payments import PollOutcome
from producer.publisher import Outgoing, Publisher
from producer.rows import BadRow, visma_change_time
from producer.state import CustomerBlock, customer_key as state_key, encode_block
from schemas.codec import encode
from schemas.events import CreditBlockEvent, CreditBlockPayload, Source, credit_block_event_id, customer_key
from vb2po import metrics
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import TopicSettings
from vb2po.visma.money import BadAmount, to_money
from vb2po.visma.queries import customers_page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorRow:
    act_no: int
    cust_no: int
    cr_susp: object
    cr_lmt: object
    ch_dt: int
    ch_tm: int


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
        page_size: int = 2000,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.source = source
        self.publisher = publisher
        self.topics = topics
        self.zone = zone
        self.blocks = dict(blocks)
        self.page_size = page_size
        self.clock = clock
        self._dead_lettered: set[int] = set()

    @property
    def company_no(self) -> int:
        return self.source.company.company_no

    def poll_once(self, *, reassert: bool = False) -> PollOutcome:
        total = PollOutcome()
        after = None
        while True:
            sql, params = customers_page(self.source.db.dialect, after, self.page_size)
            rows = [ActorRow(*r) for r in self.source.db.query(sql, params)]
            if not rows:
                return total
            after = rows[-1].act_no
            total += self._publish(rows, reassert)
            if len(rows) < self.page_size:
                return total

    def _publish(self, rows: list[ActorRow], reassert: bool) -> PollOutcome:
        now = self.clock()
        messages: list[Outgoing] = []
        changed: dict[int, CustomerBlock] = {}
        published = 0
        bad_reasons: list[str] = []
        for row in rows:
            try:
                blocked, limit = self._read(row)
            except BadRow as exc:
                if row.act_no not in self._dead_lettered:
                    log.warning("bad customer row to dead letters: %s", exc, extra={
                        "company": self.company_no, "customer": row.cust_no, "source_key": f"ActNo={row.act_no}",
                        "reason": exc.reason})
                    letter = DeadLetter(stage="producer", reason=exc.reason, error=str(exc),
                                        company_no=self.company_no, source_key=f"ActNo={row.act_no}")
                    messages.append(Outgoing(self.topics.dead_letters, f"{self.company_no}:ActNo={row.act_no}".encode(), letter.encode()))
                    self._dead_lettered.add(row.act_no)
                    bad_reasons.append(exc.reason)
                continue
            decision = decide(self.blocks.get(row.cust_no), blocked, reassert)
            if decision is None:
                continue
            state, reasserted = decision
            event = CreditBlockEvent(
                event_id=credit_block_event_id(self.company_no, row.cust_no, state.seq, state.blocked),
                source=Source(company_no=self.company_no, table="Actor", key=f"ActNo={row.act_no}"),
                occurred_at=visma_change_time(row.ch_dt, row.ch_tm, "ChTm", self.zone),
                produced_at=now,
                payload=CreditBlockPayload(
                    company_no=self.company_no, customer_no=row.cust_no, actor_no=row.act_no, blocked=state.blocked,
                    credit_limit=limit, sequence=state.seq, reasserted=reasserted,
                ),
            )
            messages.append(Outgoing(self.topics.credit_blocks, customer_key(self.company_no, row.cust_no), encode(event)))
            published += 1
            if not reasserted:
                changed[row.cust_no] = state
                messages.append(Outgoing(self.topics.producer_state, state_key(self.company_no, row.cust_no), encode_block(state)))
        if messages:
            self.publisher.publish(messages)
        self.blocks.update(changed)  # only after the transaction committed
        for reason in bad_reasons:
            metrics.BAD_ROWS.labels(str(self.company_no), reason).inc()
        return PollOutcome(rows_read=len(rows), published=published, bad_rows=len(bad_reasons))

    def _read(self, row: ActorRow) -> tuple[bool, object]:
        try:
            blocked = int(row.cr_susp) != 0
        except (TypeError, ValueError):
            raise BadRow("unreadable_credit_block", f"company {self.company_no} ActNo={row.act_no}: CrSusp {row.cr_susp!r}") from None
        try:
            return blocked, to_money(row.cr_lmt if row.cr_lmt is not None else 0)
        except BadAmount as exc:
            raise BadRow("unreadable_amount", f"company {self.company_no} ActNo={row.act_no}: credit limit {exc}") from exc

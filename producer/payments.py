"""Change polling of one company's payments, and the safety-net sweep.

`poll_once` reads what changed after the cursor, at once (nothing is held back), together with
the unmarked payments changed in the `overlap_s` behind it, and publishes each page's new rows,
plus any row of that window whose key was not published yet (a transaction that committed after
the cursor passed its change time), with the moved cursor in one transaction. A late commit is
so published by the first poll after it commits, whatever the precision of `ChTm`, as long as its
transaction was open for less than `overlap_s` (less a minute on a `ChTm`-only table).

`sweep_once` looks at every unmarked payment (a transaction open for longer than that, a
restored backup, a marker wiped by hand, one the consumer dead-lettered) and publishes it again
under the same event id, unless it was published less than `sweep_grace_s` ago: in a steady
state, when the consumer marks what it is given within seconds, it publishes nothing. A payment
the sweep published before waits twice as long each time, up to a day (`producer.recent.sweep_hold`):
one the consumer dead-lettered stays unmarked, and is not sent again every sweep.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from producer.cursor import advance, is_after, poll_start, stamp_of, upper_bound, window_stamp
from producer.publisher import Outgoing, Publisher
from producer.read_ahead import PageSource, ReadAhead, ReadAheadLost
from producer.reading import UnreadableRow, read_page
from producer.recent import RecentlyPublished, horizon, mark_cursor, sweep_hold
from producer.rows import BadRow, EncodedPayment, PaymentRow, RowReader, row_position
from producer.state import CompanyState, StateCell, encode_published, published_key
from schemas.events import customer_key, payment_event_id
from schemas.headers import republished_header
from vb2po import metrics
from vb2po.errors import TerminalError
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import ProducerSettings, TopicSettings
from vb2po.visma.clock import yyyymmdd
from vb2po.visma.company import CompanySource
from vb2po.visma.queries import Position, pending_payments_page, unmarked_payments_page

log = logging.getLogger(__name__)
RESCAN, SWEEP = "rescan", "sweep"
AHEAD_S = 60.0  # rows stamped up to this far ahead of now are read (a Visma clock a little fast); later ones are the sweep's
PLAN_FOR_S = 30.0  # a quiet company's probe statement is made again after this long (or once its cursor moved)
DEFAULTS = ProducerSettings()  # (the poller's defaults are the settings' defaults)


@dataclass(frozen=True)
class _Probe:
    """The statement a quiet company's polls send, made once for a while (an idle poll is mostly
    the cost of its own Python, multiplied by hundreds of companies)."""

    cursor: Position | None
    until: float  # unix time
    sql: str
    params: list


@dataclass(frozen=True)
class PollOutcome:
    rows_read: int = 0
    published: int = 0
    bad_rows: int = 0
    newest_change: datetime | None = None
    # (JNo, EntNo) of each payment published; filled only on request (fetch now waits on them),
    # so a long catch-up poll does not hold a key per event in memory.
    published_keys: tuple[tuple[int, int], ...] = ()
    behind: int = 0  # of `published`: rows from behind the cursor (late commits, the sweep's)

    def __add__(self, other: "PollOutcome") -> "PollOutcome":
        return PollOutcome(
            self.rows_read + other.rows_read, self.published + other.published, self.bad_rows + other.bad_rows,
            other.newest_change or self.newest_change, self.published_keys + other.published_keys,
            self.behind + other.behind,
        )


QUIET = PollOutcome()


def _key(row: PaymentRow | UnreadableRow) -> tuple[int, int] | None:
    try:
        return int(row.jno), int(row.entno)
    except (TypeError, ValueError):
        return None


def _position(row: PaymentRow | UnreadableRow) -> Position | None:
    return row.position() if isinstance(row, UnreadableRow) else row_position(row)


class PaymentPoller:
    def __init__(
        self,
        source: CompanySource,
        publisher: Publisher,
        topics: TopicSettings,
        zone: ZoneInfo,
        state: CompanyState | StateCell,
        *,
        page_size: int = DEFAULTS.page_size,
        overlap_s: float = DEFAULTS.overlap_s,
        sweep_grace_s: float = DEFAULTS.sweep_grace_s,
        sweep_interval_s: float = DEFAULTS.sweep_interval_s,
        recent: RecentlyPublished | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.source = source
        self.publisher = publisher
        self.topics = topics
        self.zone = zone
        self.cell = state if isinstance(state, StateCell) else StateCell(state)
        self.page_size = page_size
        self.overlap_s = overlap_s
        self.sweep_grace_s = sweep_grace_s
        self.sweep_interval_s = sweep_interval_s
        # Carried over by the caller when the company is opened again (new settings); else from the
        # batches the state topic held at start.
        self.recent = recent if recent is not None else RecentlyPublished(self.state.published.values())
        self.clock = clock
        self._quiet = False  # the last poll published nothing: the next one probes first (`_probe`)
        self._probe_plan: _Probe | None = None
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
        """Publish what changed after the cursor, and what committed late behind it, page by page."""
        if self._quiet and not collect_keys:
            probed = self._probe()
            if probed is not None:  # nothing to publish: settled with four integer columns a row
                return QUIET if not probed else PollOutcome(rows_read=probed)
        sel = self.source.selection
        now = self.clock().astimezone(self.zone)
        upper = upper_bound(now, AHEAD_S, sel.time_column)
        after = poll_start(self.state.payments_cursor, now, self.overlap_s, sel.time_column)
        counts = PollOutcome()
        keys: list[tuple[int, int]] = []
        db = self.source.db

        def read(start: Position | None) -> list[PaymentRow | UnreadableRow]:
            def query_page(keys_only: bool) -> tuple[str, list]:
                return pending_payments_page(db.dialect, sel, start, upper, self.page_size, keys_only=keys_only)
            return read_page(db, sel, query_page, self.company_no)
        rows = read(after)
        encoded: dict[int, EncodedPayment | BadRow] = {}
        positions: dict[int, Position | None] | None = None
        ahead: ReadAhead | None = None  # started at the first full page, stopped when the poll ends
        ahead_lost = False  # it died: this poll reads in-process; the next one starts another
        try:
            while True:
                start = after
                if not rows:
                    if counts.rows_read == 0:
                        self._skip_idle_stretch(now)
                    break
                position_of = _position if positions is None else lambda row, known=positions: known[id(row)]
                last = next((p for p in map(position_of, reversed(rows)) if p is not None), None)
                # (a full page that does not move on would be read again and again)
                more = not (len(rows) < self.page_size or last is None or (start is not None and not is_after(last, start)))
                requested = False
                if more and db.one_connection and not ahead_lost:
                    # The next page is read and encoded in another process while this one is published
                    # (producer.read_ahead), from this page's last row: it keeps no cursor of its own.
                    try:
                        ahead = ahead or ReadAhead(self._page_source())
                        ahead.request(last, upper, self.clock())
                        requested = True
                    except ReadAheadLost as exc:
                        self._lost(ahead, exc)
                        ahead, ahead_lost = None, True
                wanted = self._not_yet_published(rows, position_of)
                page = self._publish(wanted, move_cursor=True, encoded=encoded, position_of=position_of) if wanted \
                    else PollOutcome()
                if collect_keys:
                    keys.extend(page.published_keys)
                counts += replace(page, rows_read=len(rows), published_keys=())
                if not more:
                    break
                after = last
                rows, encoded, positions = [], {}, None
                if requested and ahead is not None:
                    try:
                        rows, encoded, positions = ahead.result()
                    except ReadAheadLost as exc:
                        self._lost(ahead, exc)
                        ahead, ahead_lost = None, True
                        requested = False
                if not requested:
                    rows = read(after)
        finally:
            if ahead is not None:  # (also when publishing failed: a page read ahead then is nobody's)
                ahead.close()
        self._quiet = counts.published == 0
        return replace(counts, published_keys=tuple(keys))

    def _page_source(self) -> PageSource:
        db = self.source.db
        return PageSource(db.connection_string, db.dialect.name.value, self.source.selection, self.reader, self.page_size)

    def _lost(self, ahead: ReadAhead | None, exc: ReadAheadLost) -> None:
        """The read-ahead process died (a transient trouble, not the poll's): say so and stop what is left of it."""
        log.warning("company %s: %s; reading in-process for the rest of this poll", self.company_no, exc,
                    extra={"company": self.company_no})
        if ahead is not None:
            ahead.close()

    def _probe(self) -> int | None:
        """After a poll that published nothing, the next ones ask first for keys and change stamps
        only (what the driver describes and converts per row is a good part of an idle poll's
        cost), with a statement made once for a while: the rows found, when none of them is to be
        published; else None (read them in full).

        The statement reads up to AHEAD_S past the end of its life, so it sees every row a full
        poll would read in the meantime; a row beyond the full poll's bound now is not its to publish."""
        moment = self.clock()
        now = moment.timestamp()
        sel = self.source.selection
        probe, planned = self._probe_plan, False
        if probe is None or probe.cursor is not self.state.payments_cursor or now >= probe.until:
            db = self.source.db
            local = moment.astimezone(self.zone)
            cursor = self.state.payments_cursor
            sql, params = pending_payments_page(db.dialect, sel, poll_start(cursor, local, self.overlap_s, sel.time_column),
                                                upper_bound(local, AHEAD_S + PLAN_FOR_S, sel.time_column), self.page_size,
                                                keys_only=True)
            probe = self._probe_plan = _Probe(cursor, now + PLAN_FOR_S, sql, params)
            planned = True
        try:
            found = list(self.source.db.query(probe.sql, probe.params))
        except TerminalError:
            return None  # the full read copes with what cannot be read
        if not found:
            if planned:
                self._skip_idle_stretch(moment.astimezone(self.zone))
            return 0
        if len(found) >= self.page_size:
            return None
        cursor = self.state.payments_cursor
        upper = upper_bound(moment.astimezone(self.zone), AHEAD_S, sel.time_column)
        for jno, entno, ch_dt, ch_time in found:
            try:
                position = Position(int(ch_dt or 0), int(ch_time or 0), int(jno), int(entno))
            except (TypeError, ValueError):
                return None
            if stamp_of(position) > upper:
                continue  # stamped too far ahead: a full poll would not read it yet either
            if cursor is None or is_after(position, cursor):
                return None
            if (position.jno, position.entno) not in self.recent and \
                    f"JNo={jno};EntNo={entno}" not in self.state.dead_lettered:
                return None
        return len(found)

    def _not_yet_published(self, rows: list[PaymentRow | UnreadableRow],
                           position_of: Callable[[PaymentRow | UnreadableRow], Position | None] = _position,
                           ) -> list[PaymentRow | UnreadableRow]:
        """Rows after the cursor, and rows behind it (the re-scan window) whose key was not
        published lately nor dead-lettered: late commits."""
        cursor = self.state.payments_cursor
        out = []
        for row in rows:
            position = position_of(row)
            if cursor is None or (position is not None and is_after(position, cursor)):
                out.append(row)
                continue
            key = _key(row)
            if (key is None or key not in self.recent) and row.key not in self.state.dead_lettered:
                out.append(row)
        return out

    def _skip_idle_stretch(self, now: datetime) -> None:
        """Nothing is pending: move the cursor up to the start of the day before, so an idle poll
        seeks from a recent position instead of walking everything since the last payment (or, on a
        first start where every row is marked, the whole table). Keeping a day behind leaves late
        commits of that day to the normal poll; older ones are the sweep's."""
        floor = yyyymmdd(now.date() - timedelta(days=1))
        cursor = self.state.payments_cursor
        if cursor is not None and cursor.ch_dt >= floor:
            return
        moved = Position(floor, 0, 0, 0)
        new_state = replace(self.state, payments_cursor=moved,
                            cursor_marks=mark_cursor(self.state.cursor_marks, now.timestamp(), moved, self.sweep_grace_s))
        self.publisher.publish([Outgoing(self.topics.producer_state, new_state.key(), new_state.encode())])
        self.state = new_state

    def sweep_once(self) -> PollOutcome:
        """Publish every unmarked payment that was published longer than the grace period ago, or
        never (and that the poll will not publish anyway), then record that the sweep ran."""
        sel = self.source.selection
        started = self.clock()
        now = started.timestamp()
        upper = upper_bound(started.astimezone(self.zone), AHEAD_S, sel.time_column)
        published_before = horizon(self.state.cursor_marks, now, self.sweep_grace_s)
        total = PollOutcome()
        after_key = None
        while True:
            last = after_key

            def query_page(keys_only: bool, last: tuple[int, int] | None = last) -> tuple[str, list]:
                return unmarked_payments_page(self.source.db.dialect, sel, last, self.page_size, keys_only=keys_only)
            rows = read_page(self.source.db, sel, query_page, self.company_no)
            if rows:
                after_key = (int(rows[-1].jno), int(rows[-1].entno))
                wanted = [r for r in rows if self._sweepable(r, upper, published_before, now)]
                if wanted:
                    total += self._publish(wanted, move_cursor=False)
            if len(rows) < self.page_size:
                break
        new_state = replace(self.state, last_sweep_at=now)
        self.publisher.publish([Outgoing(self.topics.producer_state, new_state.key(), new_state.encode())])
        self.state = new_state
        return total

    def _sweepable(self, row: PaymentRow | UnreadableRow, upper: tuple[int, int], published_before: Position | None,
                   now: float) -> bool:
        """Not the poll's to publish, and published longer than the grace period ago, or never; a row
        whose key or position cannot be read is swept (it is dead-lettered, once)."""
        position, key = _position(row), _key(row)
        if isinstance(row, UnreadableRow) or position is None or key is None:
            return True
        cursor = self.state.payments_cursor
        beyond = stamp_of(position) > upper  # stamped in the future: the poll does not read it yet
        if not beyond and (cursor is None or is_after(position, cursor)):
            return False  # the next poll publishes it
        published_at = self.recent.published_at(key)
        if published_at is not None:
            return published_at <= now - sweep_hold(self.recent.sweeps(key), self.sweep_grace_s)
        if beyond:
            return True
        # Published by the cursor at least a grace period ago (or never: a commit later than the
        # re-scan reaches), as far as the cursor's history tells.
        return published_before is not None and not is_after(position, published_before)

    def _publish(self, rows: list[PaymentRow | UnreadableRow], *, move_cursor: bool,
                 encoded: dict[int, EncodedPayment | BadRow] | None = None,
                 position_of: Callable[[PaymentRow | UnreadableRow], Position | None] = _position) -> PollOutcome:
        """`encoded`: rows' events (or why not) made already, by each row's id(); `position_of`: a row's position."""
        moment = self.clock()
        now = moment.timestamp()
        company_no = self.company_no
        messages: list[Outgoing] = []
        before = cursor = self.state.payments_cursor
        bad_keys: dict[str, str] = {}  # row key -> reason
        recovered: set[str] = set()  # rows dead-lettered before that read well now
        published: list[tuple[Position, bool]] = []  # (position, from behind the cursor)
        newest = None
        payments_topic = self.topics.payments
        encode = self.reader.encoder(moment)
        made = encoded or {}
        headers = () if move_cursor else (republished_header(),)
        dead_lettered = self.state.dead_lettered
        for row in rows:
            position = position_of(row)
            behind = not move_cursor or (before is not None and (position is None or not is_after(position, before)))
            try:
                if isinstance(row, UnreadableRow):
                    raise BadRow("unreadable_row", f"company {company_no} {row.key}: {row.error}")
                event = made.get(id(row)) or encode(row)
                if isinstance(event, BadRow):
                    raise event
                # The sweep's events are flagged: the consumer asks PowerOffice before posting them
                # (a row unmarked by a marker change or a restored database may be registered).
                messages.append(Outgoing(payments_topic, customer_key(company_no, event.customer_no),
                                         event.value, headers))
                published.append((position or Position(0, 0, event.jno, event.entno), behind))
                if not behind:
                    newest = event.occurred_at
                if dead_lettered and row.key in dead_lettered:
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
            if move_cursor and position is not None:
                cursor = advance(cursor, position)
        new_state = replace(self.state, payments_cursor=cursor)
        if cursor is not None and cursor != before:
            new_state = replace(new_state, cursor_marks=mark_cursor(self.state.cursor_marks, now, cursor,
                                                                    self.sweep_grace_s))
        if bad_keys or recovered:
            new_state = new_state.with_dead_lettered(set(bad_keys), forget=recovered)
        # Remember what the re-scan will meet again (changed inside its window) and what was published
        # from behind the cursor (the sweep must not publish it again within the grace period).
        window = window_stamp(cursor, moment.astimezone(self.zone), self.overlap_s, self.source.selection.time_column)
        remember = [p for p, behind in published if behind or window is None or stamp_of(p) >= window]
        batches = self.recent.new_batches(remember, now, swept=not move_cursor)
        expired = self.recent.expired(window, now, self.sweep_grace_s, self.sweep_interval_s)
        for batch in batches:
            messages.append(Outgoing(self.topics.producer_state, published_key(company_no, batch.seq), encode_published(batch)))
        for seq in expired:
            messages.append(Outgoing(self.topics.producer_state, published_key(company_no, seq), None))
        if new_state.encode() != self.state.encode():
            messages.append(Outgoing(self.topics.producer_state, new_state.key(), new_state.encode()))
        if messages:
            self.publisher.publish(messages)
        # only after the transaction committed:
        self.state = new_state
        self.recent.remove(expired)
        for batch in batches:
            self.recent.add(batch)
        for reason in bad_keys.values():
            metrics.BAD_ROWS.labels(str(company_no), reason).inc()
        behind_count = sum(1 for _, behind in published if behind)
        if behind_count:
            metrics.PUBLISHED_BEHIND_CURSOR.labels(str(company_no), RESCAN if move_cursor else SWEEP).inc(behind_count)
        return PollOutcome(rows_read=len(rows), published=len(published), bad_rows=len(bad_keys), newest_change=newest,
                           published_keys=tuple((p.jno, p.entno) for p, _ in published), behind=behind_count)


def _event_id_of(company_no: int, row: PaymentRow | UnreadableRow) -> str | None:
    """The id the row's event has once the row is fixed (for the log line of a bad row)."""
    try:
        return str(payment_event_id(company_no, int(row.jno), int(row.entno)))
    except (TypeError, ValueError):
        return None

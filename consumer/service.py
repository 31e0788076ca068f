"""The consumer process: read both topics in one group, apply events of different customers
concurrently and of one customer in order, and commit a partition's offset only past records
that are fully processed.

Commit order: a record is finished only after PowerOffice answered, the marker is written
(or the dead letter is flushed); the offset tracker then lets the commit move past it.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from kafka import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumer import crash_guard
from consumer.applied_log import KafkaAppliedLog
from consumer.credit_blocks import CreditBlockApplier, IgnoredCreditBlocks
from consumer.dead_letters import KafkaDeadLetterMemory, KafkaDeadLetterSink
from consumer.denied_projects import KafkaDeniedProjectsStore
from consumer.handler import Prepared, Record, RecordHandler, StopRequested
from consumer.intents import KafkaIntentStore
from consumer.lanes import KeyedLanes
from consumer.offsets import PartitionOffsets
from consumer.payments import PaymentApplier
from consumer.routing import Route, routes_by_company
from consumer.visma import VismaCompanyPayments
from vb2po import heap, metrics
from vb2po.errors import Vb2poError
from vb2po.kafka.clients import event_consumer, partitions_of, plain_producer, poll
from vb2po.kafka.topics import ensure_topics
from vb2po.live_settings import LiveSettings, follow_settings, version_in
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.poweroffice.ratelimit import limiter_for
from vb2po.settings import Settings

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
ISOLATED_POLL_MS = 10
UNSETTLED_S = 5.0  # after a commit refused for a rebalance, polls are whole again for this long
STUCK_REBALANCE_S = 30.0  # a rebalance this session has not got through in this long: a new session
SETTLE_MARGIN_S = 5.0  # a request another consumer sent is over this long after its client timeout


def build_apis(settings: Settings, routes: dict[int, Route]) -> dict[int, PowerOfficeClient]:
    po = settings.poweroffice
    limiter = limiter_for(po.requests_per_second, settings.consumer.instances)  # one budget per process
    in_flight = threading.BoundedSemaphore(settings.consumer.concurrency)  # one window per process
    return {
        company_no: PowerOfficeClient(
            api_url=po.api_url, token_url=po.token_url, application_key=po.application_key,
            client_key=route.client.client_key, subscription_key=po.subscription_key, timeout=po.timeout_s,
            rate_limiter=limiter, in_flight=in_flight,
        )
        for company_no, route in routes.items()
    }


def lanes_for(concurrency: int) -> int:
    """Customers applied at once: half as many again as PowerOffice requests may be open, so that
    while some lanes claim, mark and read Kafka, the others keep the request window full."""
    return concurrency + (concurrency + 1) // 2


def build_visma(settings: Settings, routes: dict[int, Route]) -> dict[int, VismaCompanyPayments]:
    return {company_no: VismaCompanyPayments(settings, company_no) for company_no in routes}


class _Partitions(ConsumerRebalanceListener):
    """Offset trackers of the partitions this instance owns.

    kafka-python 3 calls these hooks on its network thread, where nothing may block (no commit,
    no waiting), and keeps the fetch position of a partition that stays with this instance
    across a rebalance. So a partition is only retired once the new assignment shows it went
    elsewhere: its queued and retrying records give up, and whatever finished since the last
    commit (at most one poll's worth: the loop commits after every poll) is applied again by
    the next owner, which the idempotent apply absorbs. Partitions that stay keep their
    tracker and their records in flight.
    """

    def __init__(self) -> None:
        self.trackers: dict[TopicPartition, PartitionOffsets] = {}
        self.generation: dict[TopicPartition, int] = {}  # bumped when a partition leaves: its tasks give up

    def current(self, tp: TopicPartition, generation: int) -> bool:
        return self.generation.get(tp, 0) == generation

    def on_partitions_revoked(self, revoked):
        pass  # decided in on_partitions_assigned, when it is known which partitions stay

    def on_partitions_assigned(self, assigned):
        assigned = set(assigned)
        for tp in list(self.trackers):
            if tp not in assigned:
                self.generation[tp] = self.generation.get(tp, 0) + 1
                del self.trackers[tp]
        for tp in assigned:
            self.trackers.setdefault(tp, PartitionOffsets())


@dataclass
class _Suspects:
    """Records a session before this one left in flight on a partition (see consumer.crash_guard):
    they run one by one, alone, from `next` to `upto`."""

    said: crash_guard.InFlight  # what the commit said
    next: int  # the next record to run alone
    waiting_since: float  # when the partition began waiting for its next suspect record to arrive

    @property
    def upto(self) -> int:
        return self.said.upto


@dataclass
class _Isolation:
    """A suspect record running alone."""

    tp: TopicPartition
    offset: int
    alone: int  # sessions that ran it alone, this one included
    until: float  # it runs alone at most this long (it is not crashing, only slow)
    started: float = 0.0  # monotonic, when it was admitted
    survived: bool = False  # its first attempt returned: it does not take the process down
    fresh: bool = True  # admitted by this poll (not yet seen by the loop)

    def mark_survived(self) -> None:
        self.survived = True


def _position(consumer, tp: TopicPartition) -> int:
    """The partition's fetch position (-1 when unknown yet)."""
    try:
        return consumer.position(tp)
    except (KafkaError, AssertionError):
        return -1


class ConsumerService:
    def __init__(self, settings: Settings):
        self._stop = threading.Event()
        self._reload = threading.Event()  # the operators changed the settings: re-join with them
        # One producer for every topic the consumer writes: a claim's flush carries the applied
        # records and clears along, and one network thread serves them all (kafka-python's costs
        # ~1 ms of CPU per produce request)
        self._producer = plain_producer(settings.kafka, "vb2po-consumer")
        self._memory = KafkaDeadLetterMemory(settings.kafka, self._producer)
        self._applied = KafkaAppliedLog(settings.kafka, self._producer)  # the console's "registered today"
        self._intents = KafkaIntentStore(settings.kafka, self._producer)  # vouchers on their way (exactly once)
        self.live: LiveSettings | None = None
        self._consumer = None
        self._checked: set[TopicPartition] = set()  # partitions whose last commit this session read
        self._suspects: dict[TopicPartition, _Suspects] = {}
        self._isolation: _Isolation | None = None
        self._held: dict[TopicPartition, list] = {}  # records that wait while a suspect runs alone
        self._commits: dict[TopicPartition, tuple[int, str]] = {}  # what this session last committed
        self._unsettled_until = 0.0  # monotonic: the group was rebalancing lately (see `_group_unsettled`)
        self._rebalancing_since: float | None = None  # monotonic: commits refused for a rebalance since then
        self._build(settings)

    def _build(self, settings: Settings) -> None:
        """Everything that depends on the integration settings (routes, marker, credit-block sync)."""
        self.settings = settings
        routes = routes_by_company(settings)
        self.apis = build_apis(settings, routes)
        self.payments = PaymentApplier(routes, self.apis, build_visma(settings, routes),
                                       unmatched=settings.unmatched_payments, applied=self._applied,
                                       intents=self._intents, settle_s=settings.poweroffice.timeout_s + SETTLE_MARGIN_S,
                                       zone=settings.zone)
        self.denied = KafkaDeniedProjectsStore(settings.kafka, self._producer) if settings.credit_block_sync else None
        credit_blocks = CreditBlockApplier(routes, self.apis, self.denied, self.payments.visma) if self.denied \
            else IgnoredCreditBlocks()
        self.handler = RecordHandler(
            self.payments, credit_blocks, KafkaDeadLetterSink(self._producer, settings.kafka.topics.dead_letters),
            settings=settings, memory=self._memory)
        self._partitions = _Partitions()

    def _release(self) -> None:
        if self.denied is not None:
            self.denied.close()
        for api in self.apis.values():
            api.close()
        for visma in self.payments.visma.values():
            visma.close()

    def warm_up(self) -> None:
        """Fill PowerOffice id caches up front so a payment costs one call; failures only log."""
        for company_no, api in self.apis.items():
            try:
                customers = api.prefetch_all_customers()
                api.account_id(self.payments.routes[company_no].client.bank_account)
                log.info("company %s: %s PowerOffice customers cached", company_no, customers)
            except Vb2poError as exc:
                log.warning("company %s: could not prefetch PowerOffice ids (%s); they are looked up when needed",
                            company_no, exc)

    def run(self) -> None:
        """Consume until `stop()`; a settings change made by an operator is applied by leaving
        the group and joining again with the new settings (what was not finished is read again)."""
        ensure_topics(self.settings.kafka)
        self.live = follow_settings(self.settings)
        self.live.subscribe(lambda settings, overrides: self._reload.set())
        while not self._stop.is_set():
            self._reload.clear()  # before looking: a change from here on ends the coming session
            applied = self.live.applied
            if applied.settings is not self.settings:
                log.info("settings version %s: applying", self.live.overrides.version)
                self._release()
                self._build(applied.settings)
            self._consume()

    def _consume(self) -> None:
        kafka, consumer_settings = self.settings.kafka, self.settings.consumer
        leaving = threading.Event()  # this session in the group ends: unfinished records wait for the next
        self._leaving = leaving
        self.warm_up()
        self._intents.sync()
        heap.settle_after_start()
        consumer = event_consumer(
            kafka, group_id=kafka.consumer_group, max_poll_records=consumer_settings.max_records,
            group_instance_id=consumer_settings.instance_id, session_timeout_ms=consumer_settings.session_timeout_ms,
            heartbeat_interval_ms=max(1000, consumer_settings.session_timeout_ms // 4),
        )
        for topic in (kafka.topics.payments, kafka.topics.credit_blocks):
            # Know the partitions before joining: a group assignment made while a new topic's
            # metadata is still missing gives this member nothing until the next metadata refresh.
            partitions_of(consumer, topic)
        consumer.subscribe([kafka.topics.payments, kafka.topics.credit_blocks], listener=self._partitions)
        self._consumer = consumer
        self._checked, self._suspects, self._isolation, self._held, self._commits = set(), {}, None, {}, {}
        self._rebalancing_since = None
        lanes = KeyedLanes(lanes_for(consumer_settings.concurrency), name="apply")
        paused = False
        next_lag = 0.0
        try:
            while not (self._stop.is_set() or self._reload.is_set()):
                # (while suspects run one by one, a short poll notices each one's end at once; not while
                # the group rebalances: a join needs whole polls, and 10 ms ones kept one from finishing)
                short = self._isolation is not None and not self._group_unsettled(consumer)
                polled = poll(consumer, ISOLATED_POLL_MS if short else consumer_settings.poll_timeout_ms)
                if self._produced_under_newer_settings(polled):
                    break  # nothing of this poll is started: the next session reads it again
                if self._rebalancing_since is not None and time.monotonic() - self._rebalancing_since > STUCK_REBALANCE_S:
                    # Seen in CI: kafka-python stayed "rebalancing" for minutes, every commit refused,
                    # nothing fetched. A new client with the same static identity gets through.
                    log.warning("the group has been rebalancing for %.0f s without this consumer getting through; "
                                "starting a new session", time.monotonic() - self._rebalancing_since)
                    break
                self._read_in_flight(consumer)
                partitions: dict[TopicPartition, tuple[PartitionOffsets, int]] = {}
                batch: list[Record] = []
                for tp, records in self._admit(consumer, polled).items():
                    tracker = self._partitions.trackers.setdefault(tp, PartitionOffsets())
                    partitions[tp] = (tracker, self._partitions.generation.get(tp, 0))
                    # a record fetched again after a rebalance (in flight or done already) is left out
                    batch += [Record(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp)
                              for r in records if tracker.started(r.offset)]
                iso = self._isolation
                if iso is not None and iso.fresh:
                    iso.fresh = False
                    if not any((r.topic, r.partition, r.offset) == (iso.tp.topic, iso.tp.partition, iso.offset)
                                   for r in batch):
                        iso.mark_survived()  # in flight or done here already: nothing runs alone
                prepared = self.handler.prepare(batch)  # the whole poll: one Visma read per company
                if any(not item.done for item in prepared):  # (a replay of done records starts nothing)
                    self.commit(self._partitions.trackers)  # says what is in flight before it starts (crash guard)
                for item in prepared:
                    tp = TopicPartition(item.record.topic, item.record.partition)
                    tracker, generation = partitions[tp]
                    give_up = self._give_up(tp, item.record.offset)
                    iso = self._isolation
                    alone = iso is not None and (iso.tp, iso.offset) == (tp, item.record.offset)
                    if item.done and give_up is None:  # marked in Visma, or dead-lettered before: no lane
                        tracker.finished(item.record.offset)
                        if alone and iso:
                            iso.mark_survived()
                    else:
                        lanes.submit(item.record.key or (tp.topic, tp.partition),
                                     self._task(tp, generation, tracker, item, give_up,
                                                survived=iso.mark_survived if alone and iso else None))
                self.commit(self._partitions.trackers)
                if self._isolation is not None or self._suspects or self._held:
                    pass  # the crash guard decides what is paused
                elif lanes.pending >= consumer_settings.max_in_flight:  # back-pressure: poll (heartbeats), fetch nothing
                    consumer.pause(*consumer.assignment())
                    paused = True
                elif paused:
                    consumer.resume(*consumer.assignment())
                    paused = False
                if time.monotonic() >= next_lag:
                    self._report_lag(consumer)
                    next_lag = time.monotonic() + LAG_REFRESH_S
        finally:
            leaving.set()
            lanes.wait_idle(timeout=30)  # records waiting for a retry stop at once (cancelled)
            lanes.close(timeout=5)
            self.commit(self._partitions.trackers, clean=True)  # a clean exit: the next session is no crash survivor
            consumer.close(autocommit=False)
            self._consumer = None

    # -- the crash guard (see consumer.crash_guard) ----------------------------------------
    def _read_in_flight(self, consumer) -> None:
        """For each partition this session just took: what the last commit says was in flight."""
        assignment = consumer.assignment()
        for tp in list(self._checked):
            if tp not in assignment:
                self._checked.discard(tp)
                self._suspects.pop(tp, None)
                self._commits.pop(tp, None)
        for tp in assignment:
            if tp in self._checked:
                continue
            try:
                committed = consumer.committed(tp, metadata=True)
            except KafkaError as exc:
                log.warning("could not read the committed offset of %s (%s); trying again next poll", tp, exc)
                continue
            self._checked.add(tp)
            if committed is None:
                continue
            self._partitions.trackers.setdefault(tp, PartitionOffsets()).committed = committed.offset
            self._commits[tp] = (committed.offset, committed.metadata or "")
            said = crash_guard.read_in_flight(committed.offset, committed.metadata)
            if said is None:
                continue
            self._suspects[tp] = _Suspects(said, said.at, time.monotonic())
            metrics.CRASH_GUARD.labels("isolate").inc(said.upto - said.at + 1)
            log.warning("%s[%s]: the session before this one stopped with records %s to %s in flight (a crash, a kill or "
                        "a rebalance): they run one by one, alone, first%s", tp.topic, tp.partition, said.at, said.upto,
                        f"; record {said.suspect} has been running alone when {said.alone} session(s) died"
                        if said.alone else "")

    def _give_up(self, tp: TopicPartition, offset: int) -> str | None:
        suspects = self._suspects.get(tp)
        if suspects is None or not crash_guard.give_up(suspects.said, offset):
            return None
        metrics.CRASH_GUARD.labels("give_up").inc()
        return (f"the consumer process stopped {suspects.said.alone} times while this record ran alone (out of memory, "
                "a driver crash?): it is set aside unapplied so the others can go on")

    def _admit(self, consumer, polled: dict) -> dict:
        """The records to start now. While records a crashed session left in flight run one by one,
        alone, every other record waits (held here; its partition paused), so a crash then can
        only be the suspect's."""
        if not self._suspects and self._isolation is None and not self._held and all(tp in self._checked for tp in polled):
            return polled
        assignment = consumer.assignment()
        queue = {tp: records for tp, records in self._held.items() if tp in assignment}
        for tp, records in polled.items():
            queue.setdefault(tp, []).extend(records)
        self._held = {}
        admitted: dict = {}
        now = time.monotonic()
        iso = self._isolation
        if iso is not None and (iso.survived or now > iso.until or iso.tp not in assignment):
            log.info("%s[%s]@%s ran alone %s", iso.tp.topic, iso.tp.partition, iso.offset,
                     "and did not take the process down" if iso.survived else "without an answer yet; the next goes on")
            self._isolation = iso = None
        waiting: TopicPartition | None = None
        while iso is None and self._suspects:
            tp = next(iter(self._suspects))
            suspects = self._suspects[tp]
            records = sorted((r for r in queue.get(tp, []) if r.offset >= suspects.next), key=lambda r: r.offset)
            if tp not in assignment or suspects.next > suspects.upto or (records and records[0].offset > suspects.upto) \
                    or (not records and _position(consumer, tp) > suspects.upto):
                del self._suspects[tp]  # every record it left in flight ran: normal from here
                continue
            if not records:
                if now - suspects.waiting_since > crash_guard.WAIT_FOR_RECORD_S:
                    log.warning("%s[%s]: records %s to %s never arrived; going on", tp.topic, tp.partition,
                                suspects.next, suspects.upto)
                    del self._suspects[tp]
                    continue
                waiting = tp  # fetch it
                break
            record = records[0]
            queue[tp].remove(record)
            suspects.next, suspects.waiting_since = record.offset + 1, now
            admitted.setdefault(tp, []).append(record)
            if not crash_guard.give_up(suspects.said, record.offset):  # (given up: dead-lettered at once, not run)
                iso = self._isolation = _Isolation(tp, record.offset, suspects.said.alone_before(record.offset) + 1,
                                                   now + crash_guard.ISOLATION_S, started=now)
        unchecked = {tp for tp in assignment if tp not in self._checked}  # what its last commit says is not known yet
        if iso is None and waiting is None:
            for tp, records in queue.items():
                if tp in unchecked:
                    self._held[tp] = records
                else:
                    admitted.setdefault(tp, []).extend(records)
            consumer.resume(*(assignment - unchecked))
            if unchecked:
                consumer.pause(*unchecked)
            return admitted
        self._held = queue
        consumer.pause(*(tp for tp in assignment if tp != waiting))
        if waiting is not None:
            consumer.resume(waiting)
        return admitted

    def _produced_under_newer_settings(self, polled) -> bool:
        """An event stamped with a settings version this process has not applied yet: catch up
        first (the version is in the settings topic before any event carries it)."""
        if self._reload.is_set():  # changed since this session began: nothing more under the old settings
            return True
        newest = max((version_in(r.headers) for records in polled.values() for r in records), default=0)
        if self.live is None or newest <= self.live.overrides.version:
            return False
        log.info("events of settings version %s arrived; catching up from version %s", newest, self.live.overrides.version)
        self.live.refresh()
        return self._reload.is_set()

    def _task(self, tp: TopicPartition, generation: int, tracker: PartitionOffsets, item: Prepared, give_up: str | None,
              *, survived: Callable[[], None] | None = None):
        partitions, leaving = self._partitions, self._leaving

        def cancelled() -> bool:
            return self._stop.is_set() or leaving.is_set() or not partitions.current(tp, generation)

        def run() -> None:
            if cancelled():
                return
            try:
                self.handler.handle(item, cancelled, give_up=give_up, survived=survived)
            except StopRequested:
                return  # not finished: the offset stays uncommitted and the record is read again
            except Exception:  # noqa: BLE001 - the handler's boundary failed itself: set the record aside
                log.exception("%s[%s]@%s: processing failed outside the record's error boundary", tp.topic,
                              tp.partition, item.record.offset)
                try:
                    self.handler.handle(item, cancelled, give_up="vb2po failed on this record in a way it does not "
                                                             "classify (see the log): set aside unapplied")
                except StopRequested:
                    return
            tracker.finished(item.record.offset)
        return run

    def commit(self, trackers: dict[TopicPartition, PartitionOffsets], *, clean: bool = False) -> None:
        """Commit each partition's finished prefix, saying what is in flight past it (the crash
        guard); called from the polling thread only, before records start and after they finish.
        `clean`: the session ends in order, what is still in flight did not crash it."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets = {}
        for tp, tracker in list(trackers.items()):  # the network thread may retire partitions meanwhile
            at = tracker.committable()
            if at is None:
                at = tracker.committed if tracker.committed is not None else tracker.first_in_flight()
            if at is None:
                continue
            metadata = self._in_flight(tp, tracker, at, clean).metadata()
            if self._commits.get(tp) != (at, metadata):
                offsets[tp] = OffsetAndMetadata(at, metadata, -1)
        if not offsets:
            return
        self._applied.flush()  # the console's records of these payments are durable before their offsets pass
        try:
            consumer.commit(offsets)
            self._rebalancing_since = None
            for tp, meta in offsets.items():
                self._commits[tp] = (meta.offset, meta.metadata)
                if tp in trackers:
                    trackers[tp].committed = meta.offset
        except (CommitFailedError, KafkaError) as exc:
            if isinstance(exc, (CommitFailedError, RebalanceInProgressError)):
                self._unsettled_until = time.monotonic() + UNSETTLED_S
                self._rebalancing_since = self._rebalancing_since or time.monotonic()
            log.warning("offset commit failed (%s); the records after the last commit are processed again", exc)

    def _in_flight(self, tp: TopicPartition, tracker: PartitionOffsets, at: int, clean: bool) -> crash_guard.InFlight:
        last = tracker.last_started()
        upto = -1 if clean or last is None else last
        suspects, iso = self._suspects.get(tp), self._isolation
        if suspects is not None:  # not all run yet: the next session still has to
            upto = max(upto, suspects.upto)
        if iso is not None and iso.tp == tp and not clean:
            # past the crash window this session's run no longer counts (the next commit says so)
            counted = iso.alone if time.monotonic() - iso.started < crash_guard.CRASH_WINDOW_S else iso.alone - 1
            return crash_guard.InFlight(at, max(upto, iso.offset), iso.offset, counted)
        if suspects is not None and suspects.said.suspect is not None and suspects.said.suspect >= max(at, suspects.next):
            return crash_guard.InFlight(at, upto, suspects.said.suspect, suspects.said.alone)
        return crash_guard.InFlight(at, upto)

    def _group_unsettled(self, consumer) -> bool:
        """Is the group rebalancing (a commit said so lately, or the coordinator wants to rejoin)?"""
        if time.monotonic() < self._unsettled_until:
            return True
        coordinator = getattr(consumer, "_coordinator", None)  # (kafka-python's; absent in fakes)
        try:
            return bool(coordinator is not None and (coordinator.need_rejoin() or getattr(coordinator, "rejoining", False)))
        except Exception:  # noqa: BLE001 - an internal that changed: poll as usual
            return True

    def _report_lag(self, consumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                try:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - consumer.position(tp)))
                except KafkaError:
                    pass

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self.live is not None:
            self.live.close()
        self._memory.close()
        self._applied.close()
        self._intents.close()
        self._release()
        self._producer.close(timeout=10)  # last: what the stores sent goes out first

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

from kafka import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
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
from vb2po import metrics
from vb2po.errors import Vb2poError
from vb2po.kafka.clients import event_consumer, partitions_of, plain_producer, poll
from vb2po.kafka.topics import ensure_topics
from vb2po.live_settings import LiveSettings, follow_settings, version_in
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.poweroffice.ratelimit import limiter_for
from vb2po.settings import Settings

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
SETTLE_MARGIN_S = 5.0  # a request another consumer sent is over this long after its client timeout


def build_apis(settings: Settings, routes: dict[int, Route]) -> dict[int, PowerOfficeClient]:
    po = settings.poweroffice
    limiter = limiter_for(po.requests_per_second, settings.consumer.instances)  # one budget per process
    return {
        company_no: PowerOfficeClient(
            api_url=po.api_url, token_url=po.token_url, application_key=po.application_key,
            client_key=route.client.client_key, subscription_key=po.subscription_key, timeout=po.timeout_s,
            rate_limiter=limiter,
        )
        for company_no, route in routes.items()
    }


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
class _Isolation:
    """A suspect record running alone (see consumer.crash_guard)."""

    tp: TopicPartition
    offset: int
    give_up_at: float  # end the isolation even if the record never arrives (retention, an empty partition)
    started_at: float | None = None


class ConsumerService:
    def __init__(self, settings: Settings):
        self._stop = threading.Event()
        self._reload = threading.Event()  # the operators changed the settings: re-join with them
        self._dlq_producer = plain_producer(settings.kafka, "vb2po-consumer-dead-letters")
        self._memory = KafkaDeadLetterMemory(settings.kafka)
        self._applied = KafkaAppliedLog(settings.kafka)  # the console's "registered today"
        self._intents = KafkaIntentStore(settings.kafka)  # vouchers on their way (exactly once without PowerOffice's help)
        self.live: LiveSettings | None = None
        self._consumer = None
        self._marks: dict[TopicPartition, crash_guard.Mark] = {}  # what the last commit said about each first record
        self._marked: set[TopicPartition] = set()  # partitions whose first record this session counted itself into
        self._isolation: _Isolation | None = None
        self._held: dict[TopicPartition, list] = {}  # records that wait while a suspect runs alone
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
        self.denied = KafkaDeniedProjectsStore(settings.kafka) if settings.credit_block_sync else None
        credit_blocks = CreditBlockApplier(routes, self.apis, self.denied, self.payments.visma) if self.denied \
            else IgnoredCreditBlocks()
        self.handler = RecordHandler(
            self.payments, credit_blocks, KafkaDeadLetterSink(self._dlq_producer, settings.kafka.topics.dead_letters),
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
        self._marks = {}
        self._marked = set()
        self._isolation = None
        self._held = {}
        lanes = KeyedLanes(consumer_settings.concurrency, name="apply")
        paused = False
        next_lag = 0.0
        try:
            while not (self._stop.is_set() or self._reload.is_set()):
                polled = poll(consumer, consumer_settings.poll_timeout_ms)
                if self._produced_under_newer_settings(polled):
                    break  # nothing of this poll is started: the next session reads it again
                self._read_marks(consumer)
                partitions: dict[TopicPartition, tuple[PartitionOffsets, int]] = {}
                batch: list[Record] = []
                for tp, records in self._admit(consumer, polled).items():
                    tracker = self._partitions.trackers.setdefault(tp, PartitionOffsets())
                    partitions[tp] = (tracker, self._partitions.generation.get(tp, 0))
                    # a record fetched again after a rebalance (in flight or done already) is left out
                    batch += [Record(r.topic, r.partition, r.offset, r.key, r.value)
                              for r in records if tracker.started(r.offset)]
                for item in self.handler.prepare(batch):  # the whole poll: one Visma read per company
                    tp = TopicPartition(item.record.topic, item.record.partition)
                    tracker, generation = partitions[tp]
                    give_up = self._give_up(tp, item.record.offset)
                    if item.done and give_up is None:  # marked in Visma, or dead-lettered before: no lane
                        tracker.finished(item.record.offset)
                    else:
                        self._mark_start(consumer, tp, item.record.offset, alone=False)
                        lanes.submit(item.record.key or (tp.topic, tp.partition),
                                     self._task(tp, generation, tracker, item, give_up))
                self.commit(self._partitions.trackers)
                if self._isolation is not None:
                    pass  # the isolation decides what is paused
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
            self.commit(self._partitions.trackers)
            self._clear_marks(consumer)  # a clean exit: the next session is no crash survivor
            consumer.close(autocommit=False)
            self._consumer = None

    # -- the crash guard (see consumer.crash_guard) ----------------------------------------
    def _read_marks(self, consumer) -> None:
        """For each partition this session just took: what the last commit says about its first record."""
        assignment = consumer.assignment()
        for tp in list(self._marks):
            if tp not in assignment:
                del self._marks[tp]
                self._marked.discard(tp)
        for tp in assignment:
            if tp in self._marks:
                continue
            try:
                committed = consumer.committed(tp, metadata=True)
            except KafkaError as exc:
                log.warning("could not read the committed offset of %s (%s); trying again next poll", tp, exc)
                continue
            if committed is None:  # nothing committed yet: the mark goes on the first record this session takes
                self._marks[tp] = crash_guard.Mark(crash_guard.NO_OFFSET, 0, 0)
                continue
            mark = crash_guard.read_mark(committed.offset, committed.metadata)
            self._marks[tp] = mark
            self._partitions.trackers.setdefault(tp, PartitionOffsets()).committed = committed.offset
            verdict = crash_guard.verdict(mark)
            if verdict != crash_guard.NORMAL:
                metrics.CRASH_GUARD.labels(verdict).inc()
                log.warning("%s[%s]@%s: %s session(s) before this one died while processing it (%s of them with the "
                            "record alone): %s", tp.topic, tp.partition, mark.offset, mark.started, mark.alone,
                            "it is set aside unapplied" if verdict == crash_guard.GIVE_UP else "it runs alone first")

    def _mark_start(self, consumer, tp: TopicPartition, offset: int, *, alone: bool) -> None:
        """Before the partition's first record is processed: count this session into the commit metadata."""
        mark = self._marks.get(tp)
        if mark is not None and mark.offset == crash_guard.NO_OFFSET:
            mark = self._marks[tp] = crash_guard.Mark(offset, 0, 0)  # (not the fetch position: it runs ahead)
        if mark is None or tp in self._marked or offset != mark.offset:
            return
        try:
            consumer.commit({tp: OffsetAndMetadata(offset, mark.next(alone=alone).metadata(), -1)})
            self._marked.add(tp)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("could not mark the start of %s[%s]@%s (%s)", tp.topic, tp.partition, offset, exc)

    def _give_up(self, tp: TopicPartition, offset: int) -> str | None:
        mark = self._marks.get(tp)
        if mark is None or offset != mark.offset or crash_guard.verdict(mark) != crash_guard.GIVE_UP:
            return None
        return (f"the consumer process stopped {mark.started} times while this record was being processed, "
                f"{mark.alone} of them with nothing else running (out of memory, a driver crash?): it is set aside "
                "unapplied so the others can go on")

    def _admit(self, consumer, polled: dict) -> dict:
        """The records to start now. While a suspect record runs alone, every other record waits
        (its partition is paused and sought back), so a crash then can only be the suspect's."""
        iso = self._isolation
        if iso is None:
            pending = [tp for tp, mark in self._marks.items()
                       if crash_guard.verdict(mark) == crash_guard.ISOLATE and tp not in self._marked]
            if not pending:
                return polled
            tp = pending[0]
            iso = self._isolation = _Isolation(tp, self._marks[tp].offset, time.monotonic() + crash_guard.ISOLATION_S * 2)
        tracker = self._partitions.trackers.get(iso.tp)
        done = tracker is not None and (tracker.committable() or 0) > iso.offset
        now = time.monotonic()
        if done or (iso.started_at is not None and now > iso.started_at + crash_guard.ISOLATION_S) \
                or now > iso.give_up_at or iso.tp not in consumer.assignment():
            self._marked.add(iso.tp)  # handled: normal from here
            self._isolation = None
            consumer.resume(*consumer.assignment())
            log.info("%s[%s]@%s ran alone %s; the other records go on", iso.tp.topic, iso.tp.partition, iso.offset,
                     "and finished" if done else "without finishing yet")
            assignment = consumer.assignment()
            held = {tp: records for tp, records in self._held.items() if tp in assignment}
            self._held = {}
            for tp, records in polled.items():
                held.setdefault(tp, []).extend(records)
            return self._admit(consumer, held)
        admitted: dict = {}
        for tp, records in polled.items():
            keep = [r for r in records if tp == iso.tp and r.offset == iso.offset and iso.started_at is None]
            if keep:
                self._mark_start(consumer, tp, iso.offset, alone=True)
                self._marked.add(tp)
                admitted[tp] = keep
                iso.started_at = time.monotonic()
            # held, not sought back: the records wait here (at most a poll or two: the rest is paused)
            self._held.setdefault(tp, []).extend(r for r in records if r not in keep)
        others = [tp for tp in consumer.assignment() if tp != iso.tp or iso.started_at is not None]
        if others:
            consumer.pause(*others)
        return admitted

    def _clear_marks(self, consumer) -> None:
        """Leaving cleanly: a partition whose first record this session marked and never got past is
        no crash survivor; clear its mark so the next session does not hold it suspect."""
        clear = {}
        for tp in self._marked:
            mark, tracker = self._marks.get(tp), self._partitions.trackers.get(tp)
            if mark is not None and tracker is not None and tracker.committed == mark.offset:
                clear[tp] = OffsetAndMetadata(mark.offset, "", -1)
        if clear:
            try:
                consumer.commit(clear)
            except (CommitFailedError, KafkaError) as exc:
                log.warning("could not clear the start marks (%s); the next session runs their first record alone", exc)

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

    def _task(self, tp: TopicPartition, generation: int, tracker: PartitionOffsets, item: Prepared, give_up: str | None):
        partitions, leaving = self._partitions, self._leaving

        def cancelled() -> bool:
            return self._stop.is_set() or leaving.is_set() or not partitions.current(tp, generation)

        def run() -> None:
            if cancelled():
                return
            try:
                self.handler.handle(item, cancelled, give_up=give_up)
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

    def commit(self, trackers: dict[TopicPartition, PartitionOffsets]) -> None:
        """Commit each partition's finished prefix (called from the polling thread only)."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets, committing = {}, {}
        for tp, tracker in list(trackers.items()):  # the network thread may retire partitions meanwhile
            committable = tracker.committable()
            if committable is not None and committable != tracker.committed:
                offsets[tp] = OffsetAndMetadata(committable, "", -1)
                committing[tp] = tracker
        if not offsets:
            return
        try:
            consumer.commit(offsets)
            for tp, meta in offsets.items():
                committing[tp].committed = meta.offset
        except (CommitFailedError, KafkaError) as exc:
            log.warning("offset commit failed (%s); the records after the last commit are processed again", exc)

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
        self._dlq_producer.close(timeout=10)
        self._memory.close()
        self._applied.close()
        self._intents.close()
        self._release()

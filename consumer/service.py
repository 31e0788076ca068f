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

from kafka import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumer.credit_blocks import CreditBlockApplier, IgnoredCreditBlocks
from consumer.dead_letters import KafkaDeadLetterSink
from consumer.denied_projects import KafkaDeniedProjectsStore
from consumer.handler import Record, RecordHandler, StopRequested
from consumer.lanes import KeyedLanes
from consumer.markers import VismaMarkerStore
from consumer.offsets import PartitionOffsets
from consumer.payments import PaymentApplier
from consumer.routing import Route, routes_by_company
from vb2po import metrics
from vb2po.errors import Vb2poError
from vb2po.kafka.clients import event_consumer, partitions_of, plain_producer
from vb2po.kafka.topics import ensure_topics
from vb2po.live_settings import LiveSettings, follow_settings, version_in
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.poweroffice.ratelimit import limiter_for
from vb2po.settings import Settings
from vb2po.visma.db import VismaDatabase

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0


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


def build_markers(settings: Settings, routes: dict[int, Route]) -> dict[int, VismaMarkerStore]:
    markers = {}
    for company_no in routes:
        company = settings.company(company_no)
        markers[company_no] = VismaMarkerStore(
            VismaDatabase(company.odbc.get_secret_value(), company.dialect), settings.marker.field, settings.marker.value)
    return markers


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


class ConsumerService:
    def __init__(self, settings: Settings):
        self._stop = threading.Event()
        self._reload = threading.Event()  # the operators changed the settings: re-join with them
        self._dlq_producer = plain_producer(settings.kafka, "vb2po-consumer-dead-letters")
        self.live: LiveSettings | None = None
        self._consumer = None
        self._build(settings)

    def _build(self, settings: Settings) -> None:
        """Everything that depends on the integration settings (routes, marker, credit-block sync)."""
        self.settings = settings
        routes = routes_by_company(settings)
        self.apis = build_apis(settings, routes)
        self.payments = PaymentApplier(routes, self.apis, build_markers(settings, routes))
        self.denied = KafkaDeniedProjectsStore(settings.kafka) if settings.credit_block_sync else None
        credit_blocks = CreditBlockApplier(routes, self.apis, self.denied) if self.denied else IgnoredCreditBlocks()
        self.handler = RecordHandler(
            self.payments, credit_blocks, KafkaDeadLetterSink(self._dlq_producer, settings.kafka.topics.dead_letters),
            already_marked=self.payments.already_marked)
        self._partitions = _Partitions()

    def _release(self) -> None:
        if self.denied is not None:
            self.denied.close()
        for api in self.apis.values():
            api.close()
        for markers in self.payments.markers.values():
            markers.db.close_all()

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
        lanes = KeyedLanes(consumer_settings.concurrency, name="apply")
        paused = False
        next_lag = 0.0
        try:
            while not (self._stop.is_set() or self._reload.is_set()):
                polled = consumer.poll(timeout_ms=consumer_settings.poll_timeout_ms)
                if self._produced_under_newer_settings(polled):
                    break  # nothing of this poll is started: the next session reads it again
                partitions: dict[TopicPartition, tuple[PartitionOffsets, int]] = {}
                batch: list[Record] = []
                for tp, records in polled.items():
                    tracker = self._partitions.trackers.setdefault(tp, PartitionOffsets())
                    partitions[tp] = (tracker, self._partitions.generation.get(tp, 0))
                    # a record fetched again after a rebalance (in flight or done already) is left out
                    batch += [Record(r.topic, r.partition, r.offset, r.key, r.value)
                              for r in records if tracker.started(r.offset)]
                for item in self.handler.prepare(batch):  # the whole poll: one marker look-up per company
                    tp = TopicPartition(item.record.topic, item.record.partition)
                    tracker, generation = partitions[tp]
                    if item.done:  # already marked in Visma: finished without a lane
                        tracker.finished(item.record.offset)
                    else:
                        lanes.submit(item.record.key or (tp.topic, tp.partition),
                                     self._task(tp, generation, tracker, item.record, item.event))
                self.commit(self._partitions.trackers)
                if lanes.pending >= consumer_settings.max_in_flight:  # back-pressure: poll (heartbeats), fetch nothing
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
            consumer.close(autocommit=False)
            self._consumer = None

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

    def _task(self, tp: TopicPartition, generation: int, tracker: PartitionOffsets, record: Record, event):
        partitions, leaving = self._partitions, self._leaving

        def cancelled() -> bool:
            return self._stop.is_set() or leaving.is_set() or not partitions.current(tp, generation)

        def run() -> None:
            if cancelled():
                return
            try:
                self.handler.handle(record, cancelled, event)
                tracker.finished(record.offset)
            except StopRequested:
                pass  # not finished: the offset stays uncommitted and the record is read again
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
        self._release()

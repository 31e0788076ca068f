"""The consumer process: read both topics in one group, process each record to completion,
and commit a partition's offset only past records that are fully processed."""
from __future__ import annotations

import logging
import threading

from kafka.structs import OffsetAndMetadata, TopicPartition

from consumer.credit_blocks import IgnoredCreditBlocks
from consumer.dead_letters import KafkaDeadLetterSink
from consumer.handler import Record, RecordHandler, StopRequested
from consumer.markers import VismaMarkerStore
from consumer.payments import PaymentApplier
from consumer.routing import routes_by_company
from vb2po.kafka.clients import event_consumer, plain_producer
from vb2po.kafka.topics import ensure_topics
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.settings import Settings
from vb2po.visma.db import VismaDatabase

log = logging.getLogger(__name__)


def build_payment_applier(settings: Settings) -> PaymentApplier:
    routes = routes_by_company(settings)
    po = settings.poweroffice
    apis = {
        company_no: PowerOfficeClient(
            api_url=po.api_url, token_url=po.token_url, application_key=po.application_key,
            client_key=route.client.client_key, subscription_key=po.subscription_key, timeout=po.timeout_s,
        )
        for company_no, route in routes.items()
    }
    markers = {
        company_no: VismaMarkerStore(
            VismaDatabase(settings.company(company_no).odbc.get_secret_value(), settings.company(company_no).dialect),
            settings.marker.field, settings.marker.value,
        )
        for company_no in routes
    }
    return PaymentApplier(routes, apis, markers)


class ConsumerService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._stop = threading.Event()
        self.payments = build_payment_applier(settings)
        self._dlq_producer = plain_producer(settings.kafka, "vb2po-consumer-dead-letters")
        self.handler = RecordHandler(
            self.payments, IgnoredCreditBlocks(),
            KafkaDeadLetterSink(self._dlq_producer, settings.kafka.topics.dead_letters),
            stop=self._stop,
        )

    def run(self) -> None:
        kafka = self.settings.kafka
        ensure_topics(kafka)
        consumer = event_consumer(
            kafka, kafka.topics.payments, kafka.topics.credit_blocks, group_id=kafka.consumer_group,
            max_poll_records=self.settings.consumer.max_records,
        )
        try:
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=self.settings.consumer.poll_timeout_ms)
                done: dict[TopicPartition, OffsetAndMetadata] = {}
                try:
                    for tp, records in batch.items():
                        for r in records:
                            self.handler.handle(Record(r.topic, r.partition, r.offset, r.key, r.value))
                            done[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
                except StopRequested:
                    log.info("stopping with a record still waiting for retry; it will be processed again")
                finally:
                    if done:
                        consumer.commit(done)
        finally:
            consumer.close(autocommit=False)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        self._dlq_producer.close(timeout=10)

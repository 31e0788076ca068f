"""Create the topics vb2po needs when they are missing (at service start)."""
from __future__ import annotations

import logging

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from vb2po.kafka.clients import admin_client
from vb2po.settings import KafkaSettings

log = logging.getLogger(__name__)


def wanted_topics(kafka: KafkaSettings) -> list[NewTopic]:
    t = kafka.topics
    retention = {"retention.ms": str(t.retention_ms)}
    events = dict(num_partitions=t.partitions, replication_factor=t.replication_factor)
    return [
        NewTopic(t.payments, topic_configs=retention, **events),
        NewTopic(t.credit_blocks, topic_configs=retention, **events),
        NewTopic(t.dead_letters, topic_configs=retention, **events),
        # Compacted: the last committed cursor per company is kept forever.
        NewTopic(t.producer_state, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"cleanup.policy": "compact"}),
        # Compacted: which projects the consumer denied time tracking on, per customer.
        NewTopic(t.consumer_state, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"cleanup.policy": "compact"}),
        # Compacted: fingerprints of what the consumer dead-lettered; a redrive writes a tombstone.
        NewTopic(t.dead_lettered, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"cleanup.policy": "compact"}),
        # Compacted: the vouchers the consumers are about to post; a tombstone once the row is marked.
        NewTopic(t.intents, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"cleanup.policy": "compact"}),
        # Compacted: the last record per token id (issued, then perhaps revoked) is kept forever.
        NewTopic(t.admin_tokens, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"cleanup.policy": "compact"}),
        # Compacted: the operators' current setting changes (one record, versioned).
        NewTopic(t.integration_settings, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"cleanup.policy": "compact"}),
        NewTopic(t.audit, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"retention.ms": str(t.audit_retention_ms)}),
        # Append-only: one record per payment applied, read for the console's "registered today/this week".
        NewTopic(t.applied, num_partitions=1, replication_factor=t.replication_factor,
                 topic_configs={"retention.ms": str(t.applied_retention_ms)}),
    ]


def ensure_topics(kafka: KafkaSettings) -> list[str]:
    """Create missing topics; returns the names created."""
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted_topics(kafka) if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=30_000)
            except TopicAlreadyExistsError:
                pass  # another instance won the race
            log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        admin.close()

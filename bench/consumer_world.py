"""One benchmark world for the consumer: a PowerOffice sandbox client and a Visma company (SQLite
over ODBC) seeded from the same dataset, a settings file, and the payment events in Kafka.

Events are built from the dataset's payment rows with the producer's own row -> event function
(`producer.rows.payment_event`, valid `schemas.events.PaymentEvent`s with the deterministic id)
and published straight to the payments topic through the producer's own Kafka client
(`transactional_producer`: same compression, batching, one transaction per 2,000 events like a
page), keyed by customer: a 100,000-event backlog is in the topic without a producer run.
"""
from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from devstack.dataset import CustTrRow, DatasetSpec, payment_rows
from devstack.ports import free_port
from devstack.stack import LocalClient, settings_dict, to_settings, write_settings
from devstack.visma_seed import event_reader, payment_row, seed_company, sqlite_connection_string
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from schemas.codec import encode
from schemas.events import customer_key
from vb2po.kafka.clients import transactional_producer
from vb2po.kafka.topics import ensure_topics
from vb2po.visma.db import VismaDatabase

CLIENT_KEY = "client-bench"
COMPANY_NO = 1
LOOKBACK = date(2025, 12, 1)  # the dataset's first day: every generated payment is selectable
MARKER = ("Gr4", 1)
PROGRESS_EVERY_S = 2.0
EVENTS_PER_TRANSACTION = 2000  # the producer's default page size


def step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def spec_for(payments: int, seed: int) -> DatasetSpec:
    """A dataset with at least `payments` payments (about 47 % of the generated rows are)."""
    size = min(1_000_000, max(200, payments * 215 // 100 + 200))
    return DatasetSpec(size=size, seed=seed)


def external_import_reference(jno: int, entno: int) -> str:
    from consumer.payments import external_import_reference as ref

    return ref(COMPANY_NO, jno, entno)


@dataclass
class ConsumerWorld:
    name: str
    spec: DatasetSpec
    sandbox: SandboxServer
    connection_string: str
    settings_data: dict[str, Any]
    settings_file: Path
    workdir: Path
    payments: list[CustTrRow] = field(default_factory=list)

    @property
    def kafka(self):
        return to_settings(self.settings_data).kafka

    @property
    def metrics_port(self) -> int:
        return int(self.settings_data["metrics_port"])

    def ledger(self):
        return self.sandbox.state.ledgers[CLIENT_KEY]

    def vouchers(self):
        """The sandbox's voucher records (in-process: no JSON round trip for 100,000 of them)."""
        return self.ledger().vouchers()

    def sandbox_stats(self) -> dict[str, Any]:
        return self.sandbox.state.stats.snapshot()

    def reset_sandbox_stats(self) -> None:
        self.sandbox.state.stats.reset()

    def markers(self) -> int:
        with VismaDatabase(self.connection_string) as db:
            return int(list(db.query('SELECT COUNT(*) FROM "CustTr" WHERE "Gr4" = 1'))[0][0])

    def mark_all_payments(self) -> int:
        with VismaDatabase(self.connection_string) as db:
            return db.execute('UPDATE "CustTr" SET "Gr4" = 1 WHERE "VoTp" = 3 AND ("Gr4" IS NULL OR "Gr4" <> 1)')

    def with_settings(self, **sections: dict[str, Any]) -> Path:
        """Merge `sections` into the settings and rewrite the settings file."""
        for key, value in sections.items():
            self.settings_data[key] = {**self.settings_data.get(key, {}), **value} if isinstance(value, dict) else value
        return write_settings(self.settings_file, self.settings_data)

    def publish_payment_events(self, rows: Iterable[CustTrRow] | None = None) -> int:
        """The payment events of `rows` (default: all of the world's payments) onto the topic."""
        rows = list(self.payments if rows is None else rows)
        kafka = self.kafka
        ensure_topics(kafka)
        producer = transactional_producer(kafka, f"{kafka.consumer_group}-bench-seed")
        reader = event_reader(COMPANY_NO, to_settings(self.settings_data).zone)
        now = datetime.now(timezone.utc)
        started = last = time.monotonic()
        try:
            for first in range(0, len(rows), EVENTS_PER_TRANSACTION):
                producer.begin_transaction()
                for r in rows[first:first + EVENTS_PER_TRANSACTION]:
                    event = reader.event(payment_row(r), now)
                    producer.send(kafka.topics.payments, key=customer_key(COMPANY_NO, r.cust_no), value=encode(event))
                producer.commit_transaction()
                if time.monotonic() - last >= PROGRESS_EVERY_S:
                    last = time.monotonic()
                    progress(f"published {min(len(rows), first + EVENTS_PER_TRANSACTION):,}/{len(rows):,} events")
        finally:
            producer.close(timeout=30)
        progress(f"published {len(rows):,} events in {time.monotonic() - started:.1f}s")
        return len(rows)


def build_world(name: str, workdir: Path, bootstrap: str, *, payments: int, seed: int,
                rate_limit: int | None, requests_per_second: float, mark_all: bool = False,
                producer: dict[str, Any] | None = None) -> ConsumerWorld:
    """A sandbox (started here; the caller stops it) and a seeded SQLite Visma company; `producer`:
    `producer:` settings over the producer's defaults (for the steps that run a producer)."""
    spec = spec_for(payments, seed)
    started = time.monotonic()
    sandbox = SandboxServer([ClientSeed(CLIENT_KEY, spec)], SandboxConfig(rate_limit_per_second=rate_limit)).start()
    try:
        conn_str = sqlite_connection_string(workdir / f"{name}-F0001.db")
        with VismaDatabase(conn_str) as db:
            seed_company(db, spec)
        data = settings_dict(
            bootstrap_servers=bootstrap, api_url=sandbox.api_url, token_url=sandbox.token_url,
            application_key=sandbox.application_key, subscription_key=sandbox.subscription_key,
            clients=[LocalClient("bench", CLIENT_KEY, COMPANY_NO, conn_str)], lookback=LOOKBACK,
            namespace=f"bench-{name}-{uuid.uuid4().hex[:6]}", partitions=6,
            metrics_port=free_port(),
        )
        data["producer"].update(producer or {})  # the producer's own defaults unless a scenario says otherwise
        data["credit_block_sync"] = False  # payments only: credit blocks are not what is measured
        data["poweroffice"]["requests_per_second"] = requests_per_second
        world = ConsumerWorld(name, spec, sandbox, conn_str, data, write_settings(workdir / f"{name}.yaml", data),
                              workdir, list(payment_rows(spec, on_or_after=LOOKBACK))[:payments])
        if len(world.payments) < payments:
            raise RuntimeError(f"dataset {spec} has only {len(world.payments):,} payments, wanted {payments:,}")
        if mark_all:
            world.mark_all_payments()
    except BaseException:
        sandbox.stop()
        raise
    progress(f"{name}: sandbox and Visma company seeded ({spec.size:,} CustTr rows, {payments:,} payments) "
             f"in {time.monotonic() - started:.1f}s")
    return world

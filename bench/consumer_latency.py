"""(d) From the Visma commit to the voucher in PowerOffice, with payments arriving live.

The real `vb2po producer` and `vb2po consumer` run as processes against a Visma company whose
seeded payments are all marked already. The benchmark then INSERTs payment rows into `CustTr` at
a steady rate (ChDt/ChTmms = the Visma-local time of the insert, as Visma stamps a row), noting
the wall-clock time right after each COMMIT. The sandbox stamps each voucher when it stores it
(`VoucherRecord.created`, same clock): latency = created - commit. The events' `produced_at`
splits it into "commit -> published by the producer" and "published -> voucher stored".
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from kafka import KafkaConsumer, TopicPartition

from bench.consumer_process import Vb2poProcess, counter
from bench.consumer_world import build_world, external_import_reference, progress
from devstack.dataset import VOUCHER_TYPE_PAYMENT, CustTrRow, invoices
from devstack.stack import write_settings
from devstack.visma_seed import custtr_insert_sql, custtr_values
from schemas.codec import decode
from vb2po.visma.db import VismaDatabase

FIRST_LIVE_JNO = 900_000  # far above the dataset's journals


@dataclass(frozen=True)
class LatencyResult:
    label: str
    poll_interval_s: float
    rate_per_s: float
    latency_ms: int
    inserted: int
    arrived: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    to_kafka_p50_s: float
    to_kafka_p99_s: float
    kafka_to_voucher_p50_s: float
    kafka_to_voucher_p99_s: float
    dead_letters: int
    load: float  # 1-minute load average at the end


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


class LivePayments:
    """Inserts payment rows the way Visma writes them: one row, one committed transaction."""

    def __init__(self, connection_string: str, customers_invoices: list[tuple[int, int]], zone: ZoneInfo):
        self.db = VismaDatabase(connection_string)
        self.sql = custtr_insert_sql(self.db)
        self.targets = customers_invoices
        self.zone = zone
        self.committed: dict[tuple[int, int], float] = {}  # (JNo, EntNo) -> unix time after COMMIT
        self._n = 0

    def insert_one(self) -> tuple[int, int]:
        cust_no, invoice_no = self.targets[self._n % len(self.targets)]
        jno, entno = FIRST_LIVE_JNO + self._n, 1
        self._n += 1
        now = datetime.now(self.zone)
        day = now.year * 10000 + now.month * 100 + now.day
        ms = ((now.hour * 60 + now.minute) * 60 + now.second) * 1000 + now.microsecond // 1000
        row = CustTrRow(jno=jno, entno=entno, cust_no=cust_no, vo_no=jno, vo_dt=day, vo_tp=VOUCHER_TYPE_PAYMENT,
                        txt=f"Innbetaling {invoice_no}", am=Decimal("-1.00"), invo_no=str(invoice_no), cur="NOK",
                        due_dt=0, cre_dt=day, cre_tm=now.hour * 100 + now.minute, ch_dt=day,
                        ch_tm=now.hour * 100 + now.minute, ch_tmms=ms)
        self.db.execute(self.sql, custtr_values(row))
        self.committed[(jno, entno)] = time.time()
        return jno, entno

    def close(self) -> None:
        self.db.close_all()


def _produced_at(bootstrap: str, topic: str) -> dict[tuple[int, int], float]:
    """(JNo, EntNo) -> the event's produced_at, read back from the payments topic."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                           isolation_level="read_committed", consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        reader.assign(parts)
        reader.seek_to_beginning(*parts)
        ends = reader.end_offsets(parts)
        out: dict[tuple[int, int], float] = {}
        deadline = time.monotonic() + 60
        while any(reader.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=500).values():
                for r in records:
                    event = decode(r.value)
                    out[(event.payload.jno, event.payload.entno)] = event.produced_at.timestamp()
        return out
    finally:
        reader.close()


def run(label: str, workdir: Path, bootstrap: str, *, poll_interval_s: float,
        rate_per_s: float = 20.0, duration_s: float = 60.0, latency_ms: int = 0, seed: int = 41) -> LatencyResult:
    world = build_world(f"d-{label}", workdir, bootstrap, payments=200, seed=seed, rate_limit=None,
                        requests_per_second=0, mark_all=True,
                        producer={"poll_interval_s": poll_interval_s})
    live = None
    processes: list[Vb2poProcess] = []
    try:
        if latency_ms:
            world.sandbox.control.set_faults(latency_ms=latency_ms)
        targets = [(i.cust_no, i.invoice_no) for i in invoices(world.spec) if i.balance_before_sync > 0]
        live = LivePayments(world.connection_string, targets, ZoneInfo(world.settings_data["visma_timezone"]))
        consumer = Vb2poProcess(world.settings_file, "consumer", workdir / f"d-{label}-consumer.log",
                                metrics_port=world.metrics_port)
        processes.append(consumer)
        producer_settings = write_settings(workdir / f"d-{label}-producer.yaml",
                                           {**world.settings_data, "metrics_port": 0})
        processes.append(Vb2poProcess(producer_settings, "producer", workdir / f"d-{label}-producer.log"))
        ledger = world.ledger()

        def arrived(keys) -> set[str]:
            wanted = {external_import_reference(j, e) for j, e in keys}
            return {v.draft.external_import_reference for v in ledger.vouchers()} & wanted

        # A probe payment end to end first: both processes are up, the group has its partitions.
        probe = live.insert_one()
        deadline = time.monotonic() + 180
        while not arrived([probe]):
            for p in processes:
                p.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("the probe payment did not reach the sandbox within 180 s")
            time.sleep(0.1)
        del live.committed[probe]
        progress(f"d {label}: pipeline up (probe applied); inserting {rate_per_s:g} payments/s for {duration_s:g}s "
                 f"(poll_interval_s {poll_interval_s:g})")

        total = int(rate_per_s * duration_s)
        t0 = time.monotonic()
        last_note = t0
        for i in range(total):
            wait = t0 + i / rate_per_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            live.insert_one()
            if time.monotonic() - last_note >= 5:
                last_note = time.monotonic()
                progress(f"d {label}: {i + 1:,}/{total:,} inserted, {len(arrived(live.committed)):,} vouchers")
        deadline = time.monotonic() + 60
        while len(arrived(live.committed)) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        dead_letters = int(counter(consumer.metrics(), "vb2po_consumer_dead_letters_total"))
    finally:
        for p in processes:
            p.stop()
        if live is not None:
            live.close()
        world.sandbox.stop()

    created = {v.draft.external_import_reference: v.created.timestamp() for v in ledger.vouchers()}
    produced = _produced_at(bootstrap, world.kafka.topics.payments)
    total_s, to_kafka, kafka_to_voucher = [], [], []
    for (jno, entno), committed in live.committed.items():
        stored = created.get(external_import_reference(jno, entno))
        if stored is None:
            continue
        total_s.append(stored - committed)
        if (jno, entno) in produced:
            to_kafka.append(produced[(jno, entno)] - committed)
            kafka_to_voucher.append(stored - produced[(jno, entno)])
    if not total_s:
        raise RuntimeError(f"d {label}: no inserted payment reached the sandbox")
    result = LatencyResult(
        label, poll_interval_s, rate_per_s, latency_ms, len(live.committed), len(total_s),
        percentile(total_s, 50), percentile(total_s, 90), percentile(total_s, 99), max(total_s),
        percentile(to_kafka, 50) if to_kafka else float("nan"), percentile(to_kafka, 99) if to_kafka else float("nan"),
        percentile(kafka_to_voucher, 50) if kafka_to_voucher else float("nan"),
        percentile(kafka_to_voucher, 99) if kafka_to_voucher else float("nan"), dead_letters, os.getloadavg()[0],
    )
    progress(f"d {label}: {result.arrived:,}/{result.inserted:,} arrived; p50 {result.p50_s:.2f}s "
             f"p99 {result.p99_s:.2f}s max {result.max_s:.2f}s (mean {statistics.fmean(total_s):.2f}s)")
    return result

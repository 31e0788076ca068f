"""Live payments for the latency benchmark: rows written into Visma the way Visma writes them (one
transaction each, or one held open), and a read_committed reader noting when each payment became
readable in Kafka.

Times are wall-clock (`time.time()`) on one machine: the moment right after COMMIT returned, the
moment the reader got the event, and the sandbox's `VoucherRecord.created` share one clock.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Iterator
from zoneinfo import ZoneInfo

import pyodbc
from kafka import KafkaConsumer, TopicPartition

from devstack.dataset import VOUCHER_TYPE_PAYMENT, CustTrRow
from devstack.visma_seed import custtr_insert_sql, custtr_values
from vb2po.visma.db import VismaDatabase

FIRST_LIVE_JNO = 900_000  # far above the dataset's journals

Key = tuple[int, int, int]  # (company, JNo, EntNo)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


@dataclass
class Writer:
    """Writes payment rows into one company's CustTr, each in its own transaction (or, with
    `hold`, in one left open until `commit`)."""

    company_no: int
    connection_string: str
    targets: list[tuple[int, int]]  # (customer, invoice) pairs the payments pay
    zone: ZoneInfo
    minute_precision: bool = False
    committed: dict[Key, float] = field(default_factory=dict)  # key -> unix time right after COMMIT
    jnos: Iterator[int] = field(default_factory=lambda: itertools.count(FIRST_LIVE_JNO))  # (share one to keep keys apart)
    _n: itertools.count = field(default_factory=lambda: itertools.count())

    def __post_init__(self) -> None:
        self.sql = custtr_insert_sql(VismaDatabase(self.connection_string), minute_precision=self.minute_precision)
        self._conn: pyodbc.Connection | None = None

    def _row(self) -> tuple[Key, tuple]:
        n = next(self._n)
        cust_no, invoice_no = self.targets[n % len(self.targets)]
        jno = next(self.jnos)
        now = datetime.now(self.zone)
        day = now.year * 10000 + now.month * 100 + now.day
        ms = ((now.hour * 60 + now.minute) * 60 + now.second) * 1000 + now.microsecond // 1000
        row = CustTrRow(jno=jno, entno=1, cust_no=cust_no, vo_no=jno, vo_dt=day, vo_tp=VOUCHER_TYPE_PAYMENT,
                        txt=f"Innbetaling {invoice_no}", am=Decimal("-1.00"), invo_no=str(invoice_no), cur="NOK",
                        due_dt=0, cre_dt=day, cre_tm=now.hour * 100 + now.minute, ch_dt=day,
                        ch_tm=now.hour * 100 + now.minute, ch_tmms=ms)
        return (self.company_no, jno, 1), custtr_values(row, minute_precision=self.minute_precision)

    def connection(self) -> pyodbc.Connection:
        if self._conn is None:
            self._conn = pyodbc.connect(self.connection_string, autocommit=False)
        return self._conn

    def insert(self) -> Key:
        """One payment, committed at once."""
        key, values = self._row()
        conn = self.connection()
        conn.cursor().execute(self.sql, values)
        conn.commit()
        self.committed[key] = time.time()
        return key

    def hold(self) -> "HeldPayment":
        """One payment in a transaction left open (a Visma client's slow posting)."""
        key, values = self._row()
        conn = pyodbc.connect(self.connection_string, autocommit=False)
        conn.cursor().execute(self.sql, values)
        return HeldPayment(key, conn, time.time())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class HeldPayment:
    key: Key
    conn: pyodbc.Connection
    written_at: float
    committed_at: float | None = None

    def commit(self) -> None:
        self.conn.commit()
        self.committed_at = time.time()
        self.conn.close()


class Arrivals(threading.Thread):
    """Reads the payments topic read_committed from its start and notes, per payment, when it
    first became readable, and how many events there were in all (republications included)."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(name="arrivals", daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.first: dict[Key, float] = {}
        self.produced: dict[Key, float] = {}  # the first event's produced_at: when the producer's poll read it
        self.events = 0
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            reader = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), isolation_level="read_committed",
                                   group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50, check_crcs=False)
            try:
                deadline = time.monotonic() + 60
                while not (parts := reader.partitions_for_topic(self.topic)):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"topic {self.topic} has no partitions")
                    time.sleep(0.1)
                tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
                reader.assign(tps)
                reader.seek_to_beginning(*tps)
                while not self._halt.is_set():
                    for records in reader.poll(timeout_ms=100).values():
                        now = time.time()
                        for r in records:
                            event = json.loads(r.value)
                            payload = event["payload"]
                            key = (payload["company_no"], payload["jno"], payload["entno"])
                            if key not in self.first:
                                self.first[key] = now
                                self.produced[key] = datetime.fromisoformat(event["produced_at"]).timestamp()
                            self.events += 1
            finally:
                reader.close()
        except BaseException as exc:  # noqa: BLE001 - reported by check()
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the Kafka reader failed: {self.error!r}") from self.error

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

"""What this machine allows in this very run, so that `make bench-latency`'s figures can be read
on a loaded machine: each figure is printed next to the same work done without vb2po.

- **CPU share**: a pure-Python busy loop for `seconds`; the CPU time it got over the wall time is
  the share of one core a busy process gets now (100 % on an idle machine).
- **Bare ODBC round trip**: the statement a quiet company's poll sends (`PaymentPoller`'s
  keys-only probe), prepared once and executed again and again on one autocommit connection,
  nothing else: client CPU and wall time per round trip. A quiet company's round cannot cost the
  producer less than this.
- **Bare Kafka transaction**: one event and one state record per transaction with vb2po's own
  `KafkaTransactionalPublisher` (the same client settings), timed from just before the send to
  when a read_committed reader has it. COMMIT -> Kafka cannot be shorter than a poll's wait plus
  this.
"""
from __future__ import annotations

import sys
import threading
import time
import uuid
from dataclasses import dataclass

import pyodbc
from kafka import KafkaConsumer, TopicPartition

from producer.publisher import KafkaTransactionalPublisher, Outgoing
from vb2po.settings import KafkaSettings


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _cpu_s() -> float:
    """This thread's CPU time (user + system)."""
    return time.thread_time()


@dataclass
class Ceiling:
    cpu_share_pct: float  # of one core, for a busy loop
    loop_mops: float  # busy-loop iterations per second, millions
    odbc_cpu_us: float  # client CPU per bare round trip
    odbc_wall_us: float  # wall time per bare round trip
    kafka_p50_s: float  # bare transaction: send -> readable read_committed
    kafka_p99_s: float

    def lines(self) -> list[str]:
        return [
            f"Ceiling measured in this run: a busy loop got {self.cpu_share_pct:.0f} % of a core "
            f"({self.loop_mops:.1f} M iterations/s); a bare ODBC round trip of the quiet poll's statement costs "
            f"{self.odbc_cpu_us:.0f} us of client CPU, {self.odbc_wall_us:.0f} us wall; a bare Kafka transaction "
            f"(1 event + 1 state record) is readable read_committed p50 {self.kafka_p50_s * 1000:.0f} ms, "
            f"p99 {self.kafka_p99_s * 1000:.0f} ms after its send",
        ]


def cpu_share(seconds: float = 2.0) -> tuple[float, float]:
    """(share of one core in %, million loop iterations per second) for a busy loop of `seconds`."""
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    n = 0
    while time.perf_counter() - wall0 < seconds:
        for _ in range(10_000):
            n += 1
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    return 100 * cpu / wall, n / wall / 1e6


def odbc_round_trip(connection_string: str, sql: str, params: list, *, seconds: float = 2.0) -> tuple[float, float]:
    """(client CPU us, wall us) per execution of `sql` on one autocommit connection, prepared once."""
    conn = pyodbc.connect(connection_string, autocommit=True)
    try:
        cursor = conn.cursor()
        cursor.execute(sql, params).fetchall()  # prepared here
        n = 0
        wall0, cpu0 = time.perf_counter(), _cpu_s()
        while time.perf_counter() - wall0 < seconds:
            cursor.execute(sql, params).fetchall()
            n += 1
        wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
        return 1e6 * cpu / n, 1e6 * wall / n
    finally:
        conn.close()


def kafka_transaction(kafka: KafkaSettings, topic: str, state_topic: str, *, count: int = 200,
                      every_s: float = 0.05) -> tuple[float, float]:
    """(p50, p99) seconds from send to readable (read_committed), one event + one state record a transaction."""
    from bench.live import percentile

    reader = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers.split(","), isolation_level="read_committed",
                           group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50, check_crcs=False)
    publisher = KafkaTransactionalPublisher(kafka, f"bench-ceiling-{uuid.uuid4().hex[:8]}")
    sent: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    halt = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while not (parts := reader.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} has no partitions")
            reader.poll(timeout_ms=100)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        reader.assign(tps)
        reader.seek_to_end(*tps)
        for tp in tps:
            reader.position(tp)  # (resolved now, so nothing sent below is skipped)

        def read() -> None:
            while not halt.is_set():
                for records in reader.poll(timeout_ms=50).values():
                    now = time.perf_counter()
                    for r in records:
                        seen.setdefault(r.key, now)

        thread = threading.Thread(target=read, name="ceiling-reader", daemon=True)
        thread.start()
        payload = b'{"ceiling": true, "padding": "' + b"x" * 600 + b'"}'  # about a payment event's size
        for i in range(count):
            key = f"ceiling-{i}".encode()
            sent[key] = time.perf_counter()
            publisher.publish([Outgoing(topic, key, payload), Outgoing(state_topic, b"ceiling:state", b'{"i": %d}' % i)])
            time.sleep(every_s)
        deadline = time.monotonic() + 30
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        halt.set()
        thread.join(5)
    finally:
        halt.set()
        publisher.close()
        reader.close()
    delays = [seen[k] - t for k, t in sent.items() if k in seen]
    if len(delays) < count:
        raise RuntimeError(f"only {len(delays)} of {count} bare transactions became readable within 30 s")
    return percentile(delays, 50), percentile(delays, 99)


def measure(kafka: KafkaSettings, topic: str, state_topic: str, connection_string: str, sql: str, params: list) -> Ceiling:
    share, mops = cpu_share()
    _say(f"ceiling: a busy loop got {share:.0f} % of a core")
    cpu_us, wall_us = odbc_round_trip(connection_string, sql, params)
    _say(f"ceiling: bare ODBC round trip {cpu_us:.0f} us CPU, {wall_us:.0f} us wall")
    p50, p99 = kafka_transaction(kafka, topic, state_topic)
    _say(f"ceiling: bare Kafka transaction readable p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    return Ceiling(share, mops, cpu_us, wall_us, p50, p99)


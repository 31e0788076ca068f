"""Publishing a backlog of pending payments: one database, one backlog size, one producer process.

The producer runs alone in a child process (`bench.producer_process`), so its peak RSS is its
own. While it runs, this side prints progress from the payments topic's committed end
offsets; afterwards (untimed) a read_committed consumer counts what the topic really holds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
from kafka import KafkaConsumer, TopicPartition

from bench import send_ceiling
from bench.data import LOOKBACK, PROGRESS_EVERY_S, backlog_rows, load_postgres, load_sqlite
from devstack.postgres import PostgresServer
from devstack.stack import LocalClient, settings_dict, to_settings, write_settings
from devstack.visma_seed import sqlite_connection_string

PRODUCER_TIMEOUT_S = 900


@dataclass(frozen=True)
class BacklogResult:
    database: str  # "sqlite" or "postgresql"
    backlog: int  # payments the producer selects
    table_rows: int  # CustTr rows in the table (payments plus invoices and credit notes)
    published: int  # what the producer reported
    committed_in_topic: int  # counted afterwards with a read_committed consumer
    distinct_event_ids: int
    seconds: float  # fetch_now(): connect, read, publish, commit
    cpu_seconds: float  # the producer process's CPU time (all threads) during fetch_now()
    rss_before_poll_mb: float
    peak_rss_mb: float
    load_before: float  # 1-minute load average of the machine when publishing started (2 cores)
    ceiling: send_ceiling.CeilingResult | None = None  # the same events sent with nothing but kafka-python
    children_cpu_seconds: float = 0.0  # of its child processes (the read-ahead process), sampled
    children_peak_rss_mb: float = 0.0

    @property
    def of_ceiling(self) -> float | None:
        """The producer's rate over the send ceiling's, measured right after it."""
        return self.events_per_s / self.ceiling.events_per_s if self.ceiling else None

    @property
    def events_per_s(self) -> float:
        return self.committed_in_topic / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.committed_in_topic * 1e6

    @property
    def children_cpu_us_per_event(self) -> float:
        return self.children_cpu_seconds / self.committed_in_topic * 1e6


def _consumer(bootstrap: str) -> KafkaConsumer:
    # check_crcs off: this only counts records; kafka-python's CRC-32C is pure Python and slow.
    return KafkaConsumer(bootstrap_servers=bootstrap.split(","), isolation_level="read_committed", group_id=None,
                         enable_auto_commit=False, check_crcs=False, consumer_timeout_ms=1000,
                         fetch_max_bytes=64 * 2**20, max_partition_fetch_bytes=16 * 2**20, max_poll_records=50_000)


def committed_end(consumer: KafkaConsumer, topic: str) -> int:
    """Records committed so far (sum of last stable offsets; one control record per transaction
    and partition is included, so this is an estimate for progress output only)."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        return 0
    return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values())


def count_committed(bootstrap: str, topic: str, timeout_s: float = 300,
                    keep: bool = False) -> tuple[int, int, list[send_ceiling.Record]]:
    """(records, distinct event ids, and with `keep` every record's key, value and headers) a
    read_committed consumer reads from `topic`."""
    consumer = _consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        count, ids = 0, set()
        kept: list[send_ceiling.Record] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            for records in consumer.poll(timeout_ms=500).values():
                count += len(records)
                ids.update(json.loads(r.value)["event_id"] for r in records)
                if keep:
                    kept.extend((r.key, r.value, list(r.headers)) for r in records)
        return count, len(ids), kept
    finally:
        consumer.close()


def seed(kind: str, backlog: int, workdir: Path, pg: PostgresServer) -> tuple[str, int]:
    """A fresh company database holding `backlog` pending payments; (ODBC string, table rows)."""
    rows = backlog_rows(backlog)
    label = f"{kind} backlog {backlog:,}: CustTr rows"
    if kind == "sqlite":
        path = workdir / f"F0001-{backlog}.db"
        conn_str = sqlite_connection_string(path)
        return conn_str, load_sqlite(conn_str, rows, label=label + " (ODBC executemany)")
    return load_postgres(pg, f"backlog_{backlog}", rows, label=label + " (COPY)")


def run(kind: str, backlog: int, *, workdir: Path, pg: PostgresServer, bootstrap: str,
        profile_dir: Path | None = None, page_size: int | None = None, ceiling: bool = True) -> BacklogResult:
    conn_str, table_rows = seed(kind, backlog, workdir, pg)
    namespace = f"bench-{kind}-{backlog}-{uuid.uuid4().hex[:6]}"
    data = settings_dict(
        bootstrap_servers=bootstrap, api_url="http://127.0.0.1:9/unused", token_url="http://127.0.0.1:9/unused",
        application_key="unused", subscription_key="unused",
        clients=[LocalClient("bench", "bench-client", 1, conn_str)], lookback=LOOKBACK, namespace=namespace,
    )
    if page_size:
        data["producer"]["page_size"] = page_size
    settings = to_settings(data)  # fail here, not in the child, on a settings mistake
    path = write_settings(workdir / f"settings-{kind}-{backlog}.yaml", data)
    topic = settings.kafka.topics.payments

    print(f"  {kind} backlog {backlog:,}: publishing ({table_rows:,} CustTr rows in the table)", file=sys.stderr, flush=True)
    profile = profile_dir / f"profile-{kind}-{backlog}.txt" if profile_dir else None
    load_before = os.getloadavg()[0]
    out = _run_producer(path, topic, bootstrap, backlog, label=f"{kind} backlog {backlog:,}", profile=profile)
    print(f"  {kind} backlog {backlog:,}: producer peak RSS by stage (MB): {out['peak_rss_by_stage_mb']}", file=sys.stderr)
    committed, distinct, records = count_committed(bootstrap, topic, keep=ceiling)
    result = BacklogResult(kind, backlog, table_rows, out["published"], committed, distinct, out["seconds"],
                           out["cpu_seconds"], out["rss_before_poll_mb"], out["peak_rss_mb"], load_before,
                           children_cpu_seconds=out["children_cpu_seconds"],
                           children_peak_rss_mb=out["children_peak_rss_mb"])
    if not (result.published == result.committed_in_topic == result.distinct_event_ids == backlog):
        raise AssertionError(f"{kind}: wanted {backlog:,} events, producer said {result.published:,}, topic holds "
                             f"{committed:,} committed records with {distinct:,} distinct event ids")
    print(f"  {kind} backlog {backlog:,}: {result.events_per_s:,.0f} events/s, {committed:,} committed in the topic, "
          f"peak RSS {result.peak_rss_mb:.0f} MB", file=sys.stderr, flush=True)
    if ceiling:
        result = replace(result, ceiling=_send_ceiling(path, settings, records, workdir, f"{kind} backlog {backlog:,}"))
        print(f"  {kind} backlog {backlog:,}: send ceiling {result.ceiling.events_per_s:,.0f} events/s; the producer "
              f"reached {100 * result.of_ceiling:.0f}% of it", file=sys.stderr, flush=True)
    return result


def _send_ceiling(settings_path: Path, settings, records: list[send_ceiling.Record], workdir: Path,
                  label: str) -> send_ceiling.CeilingResult:
    """The same events sent again with a bare transactional KafkaProducer (bench.send_ceiling), checked afterwards."""
    print(f"  {label}: send ceiling: the same {len(records):,} events with nothing but kafka-python", file=sys.stderr,
          flush=True)
    ceiling = send_ceiling.run(settings_path, settings, send_ceiling.in_send_order(records), workdir=workdir, label=label)
    committed, distinct, _ = count_committed(settings.kafka.bootstrap_servers, ceiling.topic)
    if not (ceiling.events == committed == distinct == len(records)):
        raise AssertionError(f"{label}: the send ceiling sent {ceiling.events:,} of {len(records):,} events; its topic "
                             f"holds {committed:,} committed records with {distinct:,} distinct event ids")
    return ceiling


def _run_producer(settings_path: Path, topic: str, bootstrap: str, backlog: int, *, label: str,
                  profile: Path | None) -> dict:
    extra = [str(profile)] if profile else []
    proc = subprocess.Popen([sys.executable, "-m", "bench.producer_process", str(settings_path), *extra],
                            stdout=subprocess.PIPE, text=True)
    watcher = _consumer(bootstrap)
    try:
        child = psutil.Process(proc.pid)
        started = time.monotonic()
        while True:
            try:
                proc.wait(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - started > PRODUCER_TIMEOUT_S:
                raise TimeoutError(f"{label}: the producer did not finish in {PRODUCER_TIMEOUT_S}s")
            try:
                rss = child.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
            print(f"  {label}: ~{min(backlog, committed_end(watcher, topic)):,}/{backlog:,} events committed, "
                  f"producer RSS {rss:.0f} MB", file=sys.stderr, flush=True)
        stdout = proc.stdout.read() if proc.stdout else ""
        if proc.returncode != 0:
            raise RuntimeError(f"{label}: the producer process failed with exit code {proc.returncode}")
        return json.loads(stdout.strip().splitlines()[-1])
    finally:
        watcher.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

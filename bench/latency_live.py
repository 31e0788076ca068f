"""The live part of `make bench-latency`: one `vb2po producer` and one `vb2po consumer` at the
default settings, two Visma companies in PostgreSQL (company 1 stamps changes to the
millisecond, `ChTmms`; company 2 only to the minute, `ChTm`), the PowerOffice sandbox at its
contract's rate limit with an added latency.

Payments are INSERTed at a steady rate, alternately into each company, one transaction each.
Meanwhile, on the minute-precision company, a payment is written in a transaction held open
`hold_s` while others commit (so the cursor passes its change time), then committed: a late
commit. The run lasts past the producer's first scheduled sweep (sweep_interval_s after its
start), so the sweep runs while payments are on their way.

Measured, per payment: COMMIT -> readable by a read_committed Kafka consumer, and COMMIT -> the
voucher stored by the sandbox; per late commit: COMMIT -> readable in Kafka; over the run: events
in the topic against distinct payments (what was published more than once).
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.consumer_process import Vb2poProcess
from bench.live import Arrivals, HeldPayment, Writer, percentile
from devstack.dataset import DatasetSpec, invoices
from devstack.ports import free_port
from devstack.postgres import PostgresServer
from devstack.stack import LocalClient, settings_dict, write_settings
from devstack.visma_seed import seed_company
from producer.state import load_states
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from vb2po.settings import ProducerSettings, Settings
from vb2po.visma.db import VismaDatabase

COMPANIES = {1: False, 2: True}  # company -> minute precision (no ChTmms)
LOOKBACK = date(2025, 12, 1)  # the dataset's first day


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


@dataclass
class LiveResult:
    rate_per_s: float
    duration_s: float
    latency_ms: int
    inserted: int
    to_kafka: list[float]
    to_poweroffice: list[float]
    late: list[tuple[float, float, float]]  # (held open s, commit -> the poll that read it s, commit -> readable in Kafka s)
    events: int  # payment events in the topic
    distinct: int  # distinct payments among them
    sweeps_in_load: int  # scheduled sweeps that ran while payments were on their way
    producer_cpu_s: float
    load: float
    by_company: dict[int, list[float]] = field(default_factory=dict)  # commit -> Kafka per company

    @property
    def republished(self) -> int:
        return self.events - self.distinct

    @property
    def republished_pct(self) -> float:
        return 100 * self.republished / self.events if self.events else float("nan")

    @property
    def late_max_s(self) -> float:
        return max(s for _, _, s in self.late) if self.late else float("nan")


def _seed(pg: PostgresServer, name: str, spec: DatasetSpec, minute_precision: bool) -> str:
    conn_str = pg.create_database(name)
    with VismaDatabase(conn_str) as db:
        seed_company(db, spec, minute_precision=minute_precision)
        db.execute('UPDATE "CustTr" SET "Gr4" = 1 WHERE "VoTp" = 3')  # caught up: every payment applied
    return conn_str


def run(workdir: Path, bootstrap: str, pg: PostgresServer, *, rate_per_s: float, duration_s: float | None,
        latency_ms: int, hold_s: float, late_every_s: float) -> LiveResult:
    """`duration_s` None: until 30 s after the producer's first scheduled sweep (at least 120 s)."""
    specs = {n: DatasetSpec(size=400, seed=40 + n, company_no=n) for n in COMPANIES}
    keys = {n: f"latency-client-{n}" for n in COMPANIES}
    sandbox = SandboxServer([ClientSeed(keys[n], specs[n]) for n in COMPANIES], SandboxConfig()).start()
    processes: list[Vb2poProcess] = []
    writers: dict[int, Writer] = {}
    arrivals: Arrivals | None = None
    try:
        dbs = {n: _seed(pg, f"live_f{n:04d}", specs[n], COMPANIES[n]) for n in COMPANIES}
        data = settings_dict(
            bootstrap_servers=bootstrap, api_url=sandbox.api_url, token_url=sandbox.token_url,
            application_key=sandbox.application_key, subscription_key=sandbox.subscription_key,
            clients=[LocalClient(f"client-{n}", keys[n], n, dbs[n]) for n in COMPANIES],
            lookback=LOOKBACK,
            namespace=f"bench-latency-{uuid.uuid4().hex[:6]}", partitions=6,
        )
        data["producer"] = {}  # the defaults, all of them
        settings = Settings(**data)
        topic = settings.kafka.topics.payments
        zone = ZoneInfo(settings.visma_timezone)
        if latency_ms:
            sandbox.control.set_faults(latency_ms=latency_ms)
        for n in COMPANIES:
            targets = [(i.cust_no, i.invoice_no) for i in invoices(specs[n]) if i.balance_before_sync > 0]
            writers[n] = Writer(n, dbs[n], targets, zone, minute_precision=COMPANIES[n])
        consumer_file = write_settings(workdir / "latency-consumer.yaml", {**data, "metrics_port": free_port()})
        producer_file = write_settings(workdir / "latency-producer.yaml", {**data, "metrics_port": 0})
        processes.append(Vb2poProcess(consumer_file, "consumer", workdir / "latency-consumer.log"))
        producer = Vb2poProcess(producer_file, "producer", workdir / "latency-producer.log")
        producer_started = time.time()
        processes.append(producer)

        vouchers = {}  # external import reference -> created (unix)

        def voucher_times() -> dict[str, float]:
            for ledger in sandbox.state.ledgers.values():
                for v in ledger.vouchers():
                    vouchers.setdefault(v.draft.external_import_reference, v.created.timestamp())
            return vouchers

        from consumer.payments import external_import_reference

        def ref(key) -> str:
            return external_import_reference(*key)

        # A probe payment per company end to end first: both processes up, the group has its partitions.
        probes = [writers[n].insert() for n in COMPANIES]
        deadline = time.monotonic() + 180
        while not all(ref(k) in voucher_times() for k in probes):
            for p in processes:
                p.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("the probe payments did not reach the sandbox within 180 s")
            time.sleep(0.2)
        for n, k in zip(COMPANIES, probes, strict=True):
            del writers[n].committed[k]
        arrivals = Arrivals(bootstrap, topic)
        arrivals.start()
        sweep_due = producer_started + ProducerSettings().sweep_interval_s
        if duration_s is None:
            duration_s = float(round(max(120.0, sweep_due + 30 - time.time())))
        _say(f"latency: pipeline up; {rate_per_s:g} payments/s for {duration_s:g}s, alternately into company 1 (ChTmms) "
             f"and 2 (ChTm only); every {late_every_s:g}s a payment on company 2 held open {hold_s:g}s; the producer's "
             f"first scheduled sweep is due {sweep_due - time.time():.0f}s from now")

        cpu_before = producer.cpu_seconds()
        total = int(rate_per_s * duration_s)
        held: list[HeldPayment] = []
        open_now: HeldPayment | None = None
        next_late = time.monotonic() + 20
        t0 = last_note = time.monotonic()
        for i in range(total):
            wait = t0 + i / rate_per_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            writers[1 + i % 2].insert()
            now = time.monotonic()
            if open_now is None and now >= next_late and now + hold_s + 5 < t0 + duration_s:
                open_now = writers[2].hold()
                next_late = now + late_every_s
            elif open_now is not None and time.time() - open_now.written_at >= hold_s:
                open_now.commit()
                held.append(open_now)
                open_now = None
            if now - last_note >= 15:
                last_note = now
                arrivals.check()
                for p in processes:
                    p.check_alive()
                _say(f"latency: {i + 1:,}/{total:,} inserted, {len(held)} late commits, {len(voucher_times()):,} vouchers")
        if open_now is not None:
            open_now.commit()
            held.append(open_now)
        cpu_s = producer.cpu_seconds() - cpu_before
        everything = [k for w in writers.values() for k in w.committed] + [h.key for h in held]
        deadline = time.monotonic() + 90
        while not all(ref(k) in voucher_times() and k in arrivals.first for k in everything):
            if time.monotonic() > deadline:
                missing = [k for k in everything if ref(k) not in vouchers]
                raise TimeoutError(f"{len(missing)} payments not applied within 90 s after the load, e.g. {missing[:5]}")
            time.sleep(0.2)
        time.sleep(2)  # anything published twice would arrive by now
        arrivals.check()
        events, distinct = arrivals.events, len(arrivals.first)
        states = load_states(settings.kafka)
    finally:
        if arrivals is not None:
            arrivals.stop()
        for p in processes:
            p.stop()
        for w in writers.values():
            w.close()
        sandbox.stop()

    sweeps = sum(1 for s in states.values() if s.last_sweep_at and s.last_sweep_at >= sweep_due - 1)
    to_kafka, to_po, by_company = [], [], {n: [] for n in COMPANIES}
    for w in writers.values():
        for key, committed in w.committed.items():
            to_kafka.append(arrivals.first[key] - committed)
            by_company[key[0]].append(arrivals.first[key] - committed)
            to_po.append(vouchers[ref(key)] - committed)
    late = [(h.committed_at - h.written_at, arrivals.produced[h.key] - h.committed_at, arrivals.first[h.key] - h.committed_at)
            for h in held]
    return LiveResult(rate_per_s, duration_s, latency_ms, len(to_kafka), to_kafka, to_po, late, events, distinct, sweeps,
                      cpu_s, os.getloadavg()[0], by_company)


def report(r: LiveResult) -> list[str]:
    p = ProducerSettings()
    lines = [
        f"Live: {r.inserted:,} payments at {r.rate_per_s:g}/s for {r.duration_s:g}s into two PostgreSQL companies (one "
        f"ChTmms, one ChTm only), real producer and consumer at the default settings (poll {p.poll_interval_s:g} s, "
        f"idle {p.idle_poll_interval_s:g} s, overlap {p.overlap_s:g} s, sweep every {p.sweep_interval_s:g} s, grace "
        f"{p.sweep_grace_s:g} s), sandbox {r.latency_ms} ms added latency and 10 requests/s:",
        f"  commit -> readable in Kafka (read_committed): p50 {percentile(r.to_kafka, 50):.3f}s p90 "
        f"{percentile(r.to_kafka, 90):.3f}s p99 {percentile(r.to_kafka, 99):.3f}s max {max(r.to_kafka):.3f}s",
    ]
    for n, values in sorted(r.by_company.items()):
        lines.append(f"    company {n} ({'ChTm only' if COMPANIES[n] else 'ChTmms'}): p50 {percentile(values, 50):.3f}s "
                     f"p99 {percentile(values, 99):.3f}s ({len(values):,} payments)")
    lines += [
        f"  commit -> voucher in PowerOffice: p50 {percentile(r.to_poweroffice, 50):.3f}s p90 "
        f"{percentile(r.to_poweroffice, 90):.3f}s p99 {percentile(r.to_poweroffice, 99):.3f}s max {max(r.to_poweroffice):.3f}s",
        f"  late commits (ChTm only; held open, others committed meanwhile; poll interval {p.poll_interval_s:g} s): "
        + ", ".join(f"held {h:.0f}s -> read by a poll {read:.3f}s and readable in Kafka {s:.3f}s after commit"
                    for h, read, s in r.late),
        f"  payment events in the topic {r.events:,} for {r.distinct:,} payments: {r.republished} published more than "
        f"once ({r.republished_pct:.2f} %); scheduled sweeps during the load: {r.sweeps_in_load} of {len(COMPANIES)} "
        "companies",
        f"  producer CPU during the load {r.producer_cpu_s:.1f}s ({100 * r.producer_cpu_s / r.duration_s:.1f} % of a core); "
        f"load average {r.load:.1f}",
    ]
    return lines

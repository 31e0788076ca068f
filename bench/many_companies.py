"""Many companies per producer (`make bench-latency`): one `vb2po producer` polling N company
databases on one PostgreSQL server, at the default settings (credit blocks included).

Every company is a copy of one template database (`CREATE DATABASE ... TEMPLATE`): a
`devstack.dataset` ledger of 2,000 `CustTr` rows and 100 customers, every payment already marked,
as a caught-up company is. The producer starts, polls each company (a first round: the sweep and
the credit-block snapshot), settles; then its CPU is measured over `idle_s` with nothing
changing (psutil: user + system time of the process, all threads). Then payments are INSERTed
into companies picked at random, and COMMIT -> readable in Kafka is measured as in the live part.
"""
from __future__ import annotations

import itertools
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil

from bench.consumer_process import Vb2poProcess, counter
from bench.live import FIRST_LIVE_JNO, Arrivals, Writer, percentile
from devstack.dataset import DatasetSpec, invoices
from devstack.ports import free_port
from devstack.postgres import PostgresServer
from devstack.stack import LocalClient, settings_dict, write_settings
from devstack.visma_seed import seed_company
from vb2po.settings import Settings
from vb2po.visma.db import VismaDatabase

TEMPLATE = "company_template"
_JNOS = itertools.count(FIRST_LIVE_JNO)  # payment keys unique across the steps (the databases are reused)
SPEC = DatasetSpec(size=2000, seed=77)
LOOKBACK = date(2025, 12, 1)


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


@dataclass
class CompaniesResult:
    companies: int
    idle_s: float
    idle_cpu_s: float
    pg_cpu_s: float  # the PostgreSQL server's processes over the same span (for information)
    start_s: float  # producer start until every company had polled once
    rss_mb: float
    threads: int
    to_kafka: list[float]
    load: float
    rounds: int = 0  # company rounds (payments, credit blocks, sweeps) during the idle span

    @property
    def cpu_us_per_round(self) -> float:
        return 1e6 * self.idle_cpu_s / self.rounds if self.rounds else float("nan")

    @property
    def idle_cpu_pct(self) -> float:
        return 100 * self.idle_cpu_s / self.idle_s

    @property
    def p50(self) -> float:
        return percentile(self.to_kafka, 50)

    @property
    def p99(self) -> float:
        return percentile(self.to_kafka, 99)


class CompanyDatabases:
    """Up to N copies of the template company, made once and reused by every step."""

    def __init__(self, pg: PostgresServer):
        self.pg = pg
        self.made: dict[int, str] = {}
        self._template_ready = False

    def template(self) -> None:
        if self._template_ready:
            return
        conn_str = self.pg.create_database(TEMPLATE)
        with VismaDatabase(conn_str) as db:
            seed_company(db, SPEC)
            db.execute('UPDATE "CustTr" SET "Gr4" = 1 WHERE "VoTp" = 3')
        self._template_ready = True

    def first(self, n: int) -> dict[int, str]:
        self.template()
        started = time.monotonic()
        for company_no in range(1, n + 1):
            if company_no not in self.made:
                self.made[company_no] = self.pg.create_database(f"f{company_no:04d}", template=TEMPLATE)
        if time.monotonic() - started > 1:
            _say(f"companies: {n} databases ready ({time.monotonic() - started:.0f}s to copy the template)")
        return {k: self.made[k] for k in range(1, n + 1)}


def _postgres_cpu(pg: PostgresServer) -> float:
    """User + system CPU seconds of this PostgreSQL server (its postmaster and every backend) so far."""
    try:
        postmaster = psutil.Process(int((pg.datadir / "postmaster.pid").read_text().split()[0]))
        procs = [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return float("nan")
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def run(workdir: Path, bootstrap: str, pg: PostgresServer, dbs: CompanyDatabases, n: int, *, idle_s: float,
        rate_per_s: float, duration_s: float) -> CompaniesResult:
    companies = dbs.first(n)
    data = settings_dict(
        bootstrap_servers=bootstrap, api_url="http://127.0.0.1:9/unused", token_url="http://127.0.0.1:9/unused",
        application_key="unused", subscription_key="unused",
        clients=[LocalClient("bench", "bench-client", 1, companies[1])], lookback=LOOKBACK,
        namespace=f"bench-companies-{n}-{uuid.uuid4().hex[:6]}", metrics_port=free_port(),
    )
    data["producer"] = {}  # the defaults
    data["companies"] = [{"company_no": k, "odbc": cs, "dialect": "postgresql"} for k, cs in companies.items()]
    settings = Settings(**data)
    zone = ZoneInfo(settings.visma_timezone)
    path = write_settings(workdir / f"companies-{n}.yaml", data)
    producer = Vb2poProcess(path, "producer", workdir / f"companies-{n}-producer.log",
                            metrics_port=data["metrics_port"])
    arrivals: Arrivals | None = None
    targets = [(i.cust_no, i.invoice_no) for i in invoices(SPEC) if i.balance_before_sync > 0]
    try:
        started = time.monotonic()
        deadline = started + 300 + n
        while True:
            producer.check_alive()
            m = producer.metrics()
            polled = sum(1 for k, v in m.items() if k.startswith("vb2po_producer_last_success_timestamp_seconds{") and v > 0)
            if polled >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} companies: only {polled} had polled after {time.monotonic() - started:.0f}s")
            time.sleep(1)
        start_s = time.monotonic() - started
        _say(f"companies {n}: every company polled once after {start_s:.1f}s; settling 15 s (first credit-block "
             "snapshots and sweeps)")
        time.sleep(15)
        ps = psutil.Process(producer.proc.pid)
        rounds0 = counter(producer.metrics(), "vb2po_producer_poll_duration_seconds_count")
        cpu0, pg0, t0 = producer.cpu_seconds(), _postgres_cpu(pg), time.monotonic()
        time.sleep(idle_s)
        idle_cpu, pg_cpu, span = producer.cpu_seconds() - cpu0, _postgres_cpu(pg) - pg0, time.monotonic() - t0
        rounds = int(counter(producer.metrics(), "vb2po_producer_poll_duration_seconds_count") - rounds0)
        rss, threads = ps.memory_info().rss / 2**20, ps.num_threads()
        _say(f"companies {n}: idle CPU {100 * idle_cpu / span:.1f} % of a core over {span:.0f}s ({rounds / span:.0f} "
             f"polls/s, {1e6 * idle_cpu / max(rounds, 1):.0f} us each; PostgreSQL {100 * pg_cpu / span:.1f} %), "
             f"RSS {rss:.0f} MB, {threads} threads")

        arrivals = Arrivals(bootstrap, settings.kafka.topics.payments)
        arrivals.start()
        rng = random.Random(n)
        writers: dict[int, Writer] = {}
        total = int(rate_per_s * duration_s)
        t1 = time.monotonic()
        for i in range(total):
            wait = t1 + i / rate_per_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            company = rng.randint(1, n)
            writer = writers.get(company) or writers.setdefault(
                company, Writer(company, companies[company], targets, zone, jnos=_JNOS))
            writer.insert()
            writer.close()  # (one connection per payment: a few hundred open ones would crowd the server)
        committed = {k: t for w in writers.values() for k, t in w.committed.items()}
        deadline = time.monotonic() + 60
        while not all(k in arrivals.first for k in committed):
            arrivals.check()
            producer.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} companies: {sum(k not in arrivals.first for k in committed)} payments not in "
                                   "Kafka 60 s after the load")
            time.sleep(0.2)
        to_kafka = [arrivals.first[k] - t for k, t in committed.items()]
        # Caught up again, as a consumer leaves them: the next step's producer (a new state) would
        # otherwise publish these payments again at its start and poll their companies as busy ones.
        for company in writers:
            with VismaDatabase(companies[company]) as db:
                db.execute('UPDATE "CustTr" SET "Gr4" = 1 WHERE "VoTp" = 3')
    finally:
        if arrivals is not None:
            arrivals.stop()
        producer.stop()
    result = CompaniesResult(n, span, idle_cpu, pg_cpu, start_s, rss, threads, to_kafka, os.getloadavg()[0], rounds)
    _say(f"companies {n}: commit -> Kafka p50 {result.p50:.3f}s p99 {result.p99:.3f}s over {len(to_kafka)} payments")
    return result


def report(results: list[CompaniesResult], rate_per_s: float, duration_s: float, ceiling=None) -> list[str]:
    lines = [f"Many companies per producer (PostgreSQL, each company 2,000 CustTr rows and 100 customers, all caught up; "
             f"default settings, credit blocks on); then {rate_per_s:g} payments/s for {duration_s:g}s into random companies:",
             f"  {'companies':>9} {'idle CPU':>9} {'polls/s':>8} {'us/poll':>8} {'PostgreSQL':>10} {'start':>7} {'RSS':>7} "
             f"{'threads':>7} {'commit->Kafka p50':>17} {'p99':>7} {'max':>7} {'load':>5}"]
    for r in results:
        lines.append(f"  {r.companies:>9} {r.idle_cpu_pct:>8.1f}% {r.rounds / r.idle_s:>8.0f} {r.cpu_us_per_round:>8.0f} "
                     f"{100 * r.pg_cpu_s / r.idle_s:>9.1f}% {r.start_s:>6.1f}s {r.rss_mb:>5.0f}MB {r.threads:>7} "
                     f"{r.p50:>16.3f}s {r.p99:>6.3f}s {max(r.to_kafka):>6.3f}s {r.load:>5.1f}")
    if ceiling is not None and results:
        biggest = max(results, key=lambda r: r.companies)
        lines.append(f"  against the ceiling: at {biggest.companies} companies a poll costs the producer "
                     f"{biggest.cpu_us_per_round:.0f} us of CPU, {biggest.cpu_us_per_round / ceiling.odbc_cpu_us:.1f}x a bare "
                     f"ODBC round trip ({ceiling.odbc_cpu_us:.0f} us) measured in this run")
    return lines

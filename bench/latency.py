"""`make bench-latency`: how soon a Visma commit is in Kafka and in PowerOffice, how soon a late
commit is found, how much is published twice, and what many quiet companies cost a producer.

    .venv/bin/python -m bench.latency [--rate 2] [--duration-s N] [--latency-ms 100]
                                      [--hold-s 30] [--companies 1,50,200,500] [--idle-s 30]

1. Live (`bench.latency_live`): a real `vb2po producer` and `vb2po consumer` at the default
   settings, two Visma companies in PostgreSQL (one with `ChTmms`, one with `ChTm` only), the
   PowerOffice sandbox at 10 requests/s with `--latency-ms` added to every call. Payments are
   INSERTed at `--rate` until 30 s after the producer's first scheduled sweep (or for
   `--duration-s`); on the minute-precision company a payment is regularly held open `--hold-s`
   while others commit.
2. Many companies (`bench.many_companies`): one producer polling N company databases on one
   PostgreSQL server, for each N of `--companies`: its CPU while nothing changes, then COMMIT ->
   readable in Kafka for payments into random companies.

0. The ceiling (`bench.ceiling`), measured first in the same run: the share of a core a busy
   loop gets, a bare ODBC round trip of a quiet poll's statement, a bare Kafka transaction; the
   report puts each figure beside it.

Starts a one-node Kafka broker, PostgreSQL and the sandbox on 127.0.0.1 and stops them at the
end, also on failure, Ctrl-C or SIGTERM (about 15 minutes at the defaults). Progress on stderr;
the report on stdout, its last line
`latency: commit->kafka p50 <a> s p99 <b> s, commit->poweroffice p50 <c> s p99 <d> s, late commit
published <e> s after commit, republished <f>% of published, 500 companies idle CPU <g>% of a
core, p99 commit->kafka <h> s at 500 companies` (<e>: the slowest of the late commits; the
companies figures: the largest N run). Results and their reading: BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import ceiling as ceiling_bench
from bench import latency_live, many_companies
from bench.live import percentile
from bench.running import run, stop_on_sigterm
from devstack.kafka import KafkaCluster
from devstack.postgres import PostgresServer
from devstack.stack import LocalClient, settings_dict
from producer.cursor import upper_bound
from producer.payments import AHEAD_S
from vb2po.kafka.topics import ensure_topics
from vb2po.settings import ProducerSettings, Settings
from vb2po.visma.clock import yyyymmdd
from vb2po.visma.company import open_company
from vb2po.visma.queries import Position, pending_payments_page


def _step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def summary_line(live: latency_live.LiveResult | None, companies: list[many_companies.CompaniesResult]) -> str:
    def s(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    biggest = max(companies, key=lambda r: r.companies) if companies else None
    n = biggest.companies if biggest else 500
    return (f"latency: commit->kafka p50 {s(percentile(live.to_kafka, 50) if live else None)} s "
            f"p99 {s(percentile(live.to_kafka, 99) if live else None)} s, "
            f"commit->poweroffice p50 {s(percentile(live.to_poweroffice, 50) if live else None)} s "
            f"p99 {s(percentile(live.to_poweroffice, 99) if live else None)} s, "
            f"late commit published {s(live.late_max_s if live and live.late else None)} s after commit, "
            f"republished {s(live.republished_pct if live else None)}% of published, "
            f"{n} companies idle CPU {'n/a' if not biggest else f'{biggest.idle_cpu_pct:.1f}'}% of a core, "
            f"p99 commit->kafka {s(biggest.p99 if biggest else None)} s at {n} companies")


def measure_ceiling(bootstrap: str, dbs: many_companies.CompanyDatabases) -> ceiling_bench.Ceiling:
    """The ceiling on a copy of the many-companies template: its quiet poll's keys-only statement as
    the producer sends it, and a Kafka topic pair of its own."""
    conn_str = dbs.first(1)[1]
    data = settings_dict(bootstrap_servers=bootstrap, api_url="http://127.0.0.1:9/unused",
                         token_url="http://127.0.0.1:9/unused", application_key="unused", subscription_key="unused",
                         clients=[LocalClient("bench", "bench-client", 1, conn_str)], lookback=many_companies.LOOKBACK,
                         namespace=f"bench-ceiling-{uuid.uuid4().hex[:6]}")
    data["producer"] = {}
    settings = Settings(**data)
    ensure_topics(settings.kafka)
    source = open_company(settings, settings.company(1), polling=True)
    try:
        now = datetime.now(ZoneInfo(settings.visma_timezone))
        sel = source.selection
        # where an idle company's cursor stands (the start of yesterday), as `PaymentPoller` keeps it
        sql, params = pending_payments_page(source.db.dialect, sel, Position(yyyymmdd(now.date() - timedelta(days=1)), 0, 0, 0),
                                            upper_bound(now, AHEAD_S, sel.time_column), settings.producer.page_size,
                                            keys_only=True)
    finally:
        source.db.close_all()
    topics = settings.kafka.topics
    return ceiling_bench.measure(settings.kafka, topics.payments, topics.producer_state, conn_str, sql, params)


def against_ceiling(live: latency_live.LiveResult, ceiling: ceiling_bench.Ceiling | None) -> list[str]:
    """The live figures beside their floor: a poll's wait (half an interval at the median, a whole one
    at worst) plus a bare Kafka transaction measured in this run."""
    if ceiling is None:
        return []
    p = ProducerSettings()
    floor50 = p.poll_interval_s / 2 + ceiling.kafka_p50_s
    floor99 = p.poll_interval_s + ceiling.kafka_p99_s
    return [f"  against the ceiling: commit -> Kafka p50 {percentile(live.to_kafka, 50):.3f}s is "
            f"{percentile(live.to_kafka, 50) / floor50:.1f}x its floor ({floor50:.3f}s = half a poll interval + a bare "
            f"Kafka transaction's p50), p99 {percentile(live.to_kafka, 99):.3f}s is "
            f"{percentile(live.to_kafka, 99) / floor99:.1f}x ({floor99:.3f}s = a poll interval + the bare p99)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2.0, help="payments/s inserted in the live part (default 2)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="live load duration (default: until 30 s after the producer's first scheduled sweep)")
    parser.add_argument("--latency-ms", type=int, default=100, help="added to every sandbox call (default 100)")
    parser.add_argument("--hold-s", type=float, default=30.0, help="how long a late transaction stays open (default 30)")
    parser.add_argument("--late-every-s", type=float, default=60.0, help="a late transaction every this many s")
    parser.add_argument("--companies", default="1,50,200,500", help="company counts for the many-companies part")
    parser.add_argument("--idle-s", type=float, default=30.0, help="idle CPU measured over this long (default 30)")
    parser.add_argument("--companies-rate", type=float, default=3.0, help="payments/s into random companies (default 3)")
    parser.add_argument("--companies-duration-s", type=float, default=45.0, help="... for this long (default 45)")
    parser.add_argument("--steps", default="ceiling,live,companies", help="ceiling,live,companies")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and settings")
    args = parser.parse_args(argv)
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    counts = sorted({int(c) for c in args.companies.split(",") if c.strip()})

    stop_on_sigterm()
    started = time.monotonic()
    live = None
    ceiling = None
    companies: list[many_companies.CompaniesResult] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="vb2po-bench-latency-"))
        if args.keep_workdir:
            _step(f"workdir {workdir} (kept)")
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        _step("starting a 1-node Kafka broker and PostgreSQL")
        kafka = KafkaCluster(nodes=1)
        stack.callback(kafka.stop)
        pg = PostgresServer(max_connections=max(200, max(counts, default=0) + 150))
        stack.callback(pg.stop)
        kafka.start()
        pg.start()
        dbs = many_companies.CompanyDatabases(pg)
        if "ceiling" in steps:
            _step("the ceiling: a busy loop, a bare ODBC round trip, a bare Kafka transaction")
            ceiling = measure_ceiling(kafka.bootstrap_servers, dbs)
        if "live" in steps:
            how_long = f"for {args.duration_s:g}s" if args.duration_s else "until 30 s after the first scheduled sweep"
            _step(f"live: {args.rate:g} payments/s {how_long}, late commits held {args.hold_s:g}s")
            live = latency_live.run(workdir, kafka.bootstrap_servers, pg, rate_per_s=args.rate,
                                    duration_s=args.duration_s, latency_ms=args.latency_ms, hold_s=args.hold_s,
                                    late_every_s=args.late_every_s)
        if "companies" in steps:
            for n in counts:
                _step(f"{n} companies per producer")
                companies.append(many_companies.run(workdir, kafka.bootstrap_servers, pg, dbs, n, idle_s=args.idle_s,
                                                    rate_per_s=args.companies_rate,
                                                    duration_s=args.companies_duration_s))
        _step("stopping the broker and PostgreSQL")
    lines = ["", "Latency benchmark (2-core machine; 1-node Kafka, PostgreSQL over psqlODBC, sandbox on 127.0.0.1)", ""]
    if ceiling:
        lines += ceiling.lines() + [""]
    if live:
        lines += latency_live.report(live) + against_ceiling(live, ceiling) + [""]
    if companies:
        lines += many_companies.report(companies, args.companies_rate, args.companies_duration_s, ceiling) + [""]
    lines.append(f"wall time {time.monotonic() - started:.0f}s")
    print("\n".join(lines))
    print(summary_line(live, companies))
    return 0




if __name__ == "__main__":
    sys.exit(run(main))

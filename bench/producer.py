"""`make bench-producer`: the producer's throughput on a backlog, its memory, and an idle poll's cost.

    .venv/bin/python -m bench.producer [--backlog 100000] [--small-backlog 20000]
                                       [--idle-rows 1000000] [--polls 50]

Starts a one-node Kafka broker and a PostgreSQL server on 127.0.0.1 and stops both at the end,
also on failure or Ctrl-C/SIGTERM. Progress goes to stderr; the figures to stdout, the last
line being `producer: <N> events/s (sqlite), <N> events/s (postgresql), peak RSS <M> MB, <P>% of the send
ceiling measured in this run`: after each database's biggest backlog, the same events are sent
again with nothing but a transactional kafka-python producer with vb2po's client settings
(bench/send_ceiling.py); <P> is the lower of the two databases' rates over that ceiling.
Results and how to read them: BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from bench import backlog as backlog_bench
from bench import idle_poll
from bench.backlog import BacklogResult
from bench.idle_poll import IdleResult
from bench.running import run, stop_on_sigterm
from devstack.kafka import KafkaCluster
from devstack.postgres import PostgresServer

DATABASES = ("sqlite", "postgresql")



def _step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def report(results: list[BacklogResult], idle: list[IdleResult], idle_info: dict | None, wall_s: float) -> str:
    lines = ["", "Producer benchmark (2-core machine; 1-node Kafka, PostgreSQL and SQLite over ODBC on 127.0.0.1)", ""]
    lines.append(f"{'database':<11} {'backlog':>8} {'CustTr rows':>11} {'committed':>10} {'seconds':>8} "
                 f"{'events/s':>9} {'CPU us/event':>12} {'+ child':>7} {'RSS before':>10} {'peak RSS':>9} "
                 f"{'child RSS':>9} {'load':>5} {'ceiling/s':>9} {'CPU us/event':>12} {'load':>5} {'of ceiling':>10}")
    for r in results:
        c = r.ceiling
        ceiling = (f"{c.events_per_s:>9,.0f} {c.cpu_seconds / c.events * 1e6:>12.0f} {c.load_before:>5.2f} "
                   f"{100 * r.of_ceiling:>9.0f}%") if c and r.of_ceiling is not None else f"{'-':>9} {'-':>12} {'-':>5} {'-':>10}"
        lines.append(f"{r.database:<11} {r.backlog:>8,} {r.table_rows:>11,} {r.committed_in_topic:>10,} {r.seconds:>8.2f} "
                     f"{r.events_per_s:>9,.0f} {r.cpu_us_per_event:>12.0f} {r.children_cpu_us_per_event:>7.0f} "
                     f"{r.rss_before_poll_mb:>8.0f}MB {r.peak_rss_mb:>7.0f}MB {r.children_peak_rss_mb:>7.0f}MB "
                     f"{r.load_before:>5.2f} {ceiling}")
    lines += ["", "CPU us/event: the producer process (all threads); + child: its read-ahead process besides "
                  "(producer/read_ahead.py; sampled every 0.1 s), whose peak RSS is child RSS"]
    if any(r.ceiling for r in results):
        lines += ["", "ceiling: the same events (bytes, keys, headers, order) sent right after each run into a fresh topic "
                      "with as many partitions, by a bare transactional KafkaProducer with vb2po's client settings, "
                      "page_size events per transaction, timed the same way (bench/send_ceiling.py)"]
    if idle_info:
        lines += ["", f"Idle PaymentPoller.poll_once() on {idle_info['rows']:,} CustTr rows in PostgreSQL "
                      f"(seeded in {idle_info['seed_s']:.0f}s; every payment marked):"]
        for r in idle:
            lines.append(f"  {r.index:<10} index, {r.scenario:<24}: median {r.median_ms:7.2f} ms, p95 {r.p95_ms:7.2f} ms, "
                         f"max {r.max_ms:7.2f} ms ({r.polls} polls)")
        for which, sql in idle_info["indexes"].items():
            lines.append(f"  {which} index: {sql}")
        lines.append(f"  SQL Server: {idle_info['tsql_index']}")
        lines.append(f"  statement of an idle poll (the keys-only probe): {idle_info['statement']}")
        lines += ["", "Plan of the poll statement as sent through psqlODBC (auto_explain), documented index, "
                      "cursor at newest change:"]
        lines += ["  " + line for line in idle_info["odbc_plan"].splitlines()]
        for r in idle:
            lines += ["", f"EXPLAIN (ANALYZE, BUFFERS), parameters inlined, {r.index} index, {r.scenario}:"]
            lines += ["  " + line for line in r.plan.splitlines()]
    lines += ["", f"wall time {wall_s:.0f}s"]
    return "\n".join(lines)


def summary_line(results: list[BacklogResult]) -> str:
    """The rates of each database's biggest backlog, and of the two the lower share of its send ceiling."""
    def biggest(db: str) -> BacklogResult:
        return max((r for r in results if r.database == db), key=lambda r: r.backlog)
    peak = max(r.peak_rss_mb for r in results)
    line = (f"producer: {round(biggest('sqlite').events_per_s)} events/s (sqlite), "
            f"{round(biggest('postgresql').events_per_s)} events/s (postgresql), peak RSS {peak:.0f} MB")
    shares = [biggest(db).of_ceiling for db in DATABASES]
    if all(s is not None for s in shares):
        line += f", {100 * min(s for s in shares if s is not None):.0f}% of the send ceiling measured in this run"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.producer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=100_000, help="pending payments to publish (default 100,000)")
    parser.add_argument("--small-backlog", type=int, default=20_000,
                        help="a smaller backlog for the memory comparison; 0 skips it (default 20,000)")
    parser.add_argument("--idle-rows", type=int, default=1_000_000, help="CustTr rows for the idle poll; 0 skips it")
    parser.add_argument("--polls", type=int, default=50, help="timed idle polls per case (default 50)")
    parser.add_argument("--profile-dir", type=Path, default=None,
                        help="write a pyinstrument profile of each producer run here (needs pyinstrument in .venv)")
    parser.add_argument("--page-size", type=int, default=None,
                        help="producer.page_size for the backlog runs (default: the settings default, 2000)")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the send ceiling (the same events sent again with a bare KafkaProducer)")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated: sqlite,postgresql")
    args = parser.parse_args(argv)
    databases = [d for d in args.databases.split(",") if d]
    if set(databases) - set(DATABASES):
        parser.error(f"unknown database in {args.databases!r}; choose from {', '.join(DATABASES)}")
    sizes = sorted({n for n in (args.small_backlog, args.backlog) if n > 0})

    stop_on_sigterm()
    started = time.monotonic()
    results: list[BacklogResult] = []
    idle: list[IdleResult] = []
    idle_info = None
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="vb2po-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        _step("starting a 1-node Kafka broker and PostgreSQL")
        kafka = KafkaCluster(nodes=1)
        stack.callback(kafka.stop)
        pg = PostgresServer()
        stack.callback(pg.stop)
        kafka.start()
        pg.start()
        bootstrap = kafka.bootstrap_servers
        for db in databases:
            for size in sizes:
                _step(f"{db}: backlog of {size:,} pending payments")
                results.append(backlog_bench.run(db, size, workdir=workdir, pg=pg, bootstrap=bootstrap,
                                                 profile_dir=args.profile_dir, page_size=args.page_size,
                                                 ceiling=not args.no_ceiling and size == sizes[-1]))
        if args.idle_rows:
            _step(f"idle poll on {args.idle_rows:,} CustTr rows in PostgreSQL")
            idle, idle_info = idle_poll.run(pg, bootstrap, rows=args.idle_rows, polls=args.polls,
                                            namespace=f"bench-idle-{uuid.uuid4().hex[:6]}")
        _step("stopping the broker and PostgreSQL")
    print(report(results, idle, idle_info, time.monotonic() - started))
    if set(databases) == set(DATABASES) and results:
        print(summary_line(results))
    return 0




if __name__ == "__main__":
    sys.exit(run(main))

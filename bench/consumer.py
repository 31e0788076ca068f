"""`make bench-consumer`: the consumer against the real local stack (issue 4, section 8).

    .venv/bin/python -m bench.consumer [--steps a,b,c,d] [--payments-a 10000] [--latency-ms 100]
                                       [--payments-b 1000] [--replay 100000] [--memory-s 40]
                                       [--latency-duration-s 60]

(a) 10,000 payments, sandbox with 100 ms added latency, no rate limit: payments/s against the
    bound concurrency / latency (consumer.concurrency, default 16 -> 160/s).
(b) sandbox limit 10 requests/s and poweroffice.requests_per_second 10: sustained payments/s,
    PowerOffice calls per payment (every call the sandbox saw, token and start-up look-ups
    included), 429s seen and retried, dead letters.
(c) a 100,000-event backlog: first the consumer works through it applying payments (100 ms
    latency, so its in-flight window fills) while its RSS is sampled; then every row is marked
    in Visma and a new group replays all 100,000 events: events/s and PowerOffice writes.
(d) payments INSERTed into Visma at 20/s with the real producer and consumer running: p50/p99
    from the Visma commit to the voucher in the sandbox, at the default producer settings and at
    a shorter producer.poll_interval_s.

Every consumer is the real `vb2po consumer` command in a child process (psutil samples its RSS);
the sandbox runs in this process; Visma companies are SQLite files over ODBC; one Kafka broker.
Everything started is stopped at the end, also on failure, Ctrl-C or SIGTERM. Progress goes to
stderr; the report to stdout, its last line being
`consumer: <a> of bound %, <b> payments/s at limit, <c> calls/payment, <d> replay events/s,
latency p50 <x> s p99 <y> s, peak RSS <m> MB, <r>% (a) and <s>% (c) of the ceilings measured in this
run`: (a)'s ceiling is 16 threads in a process of their own making invoice look-ups through
vb2po's PowerOffice client against the same sandbox latency, (c)'s a bare kafka-python read of
the same events. (a) also reports the most PowerOffice requests the sandbox had open at once, and
fails if that exceeds consumer.concurrency. Results and their reading: BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import consumer_latency
from bench.consumer_latency import LatencyResult
from bench.consumer_process import Vb2poProcess, counter
from bench.consumer_world import CLIENT_KEY, ConsumerWorld, build_world, progress, step
from bench.running import stop_on_sigterm
from devstack.kafka import KafkaCluster
from devstack.stack import to_settings
from vb2po.kafka.clients import event_consumer, partitions_of
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.settings import ConsumerSettings, ProducerSettings

POST_VOUCHER = "POST /v2/Vouchers/BankJournals"
CEILING_S = 5.0  # how long (a)'s ceiling is measured
DEFAULT_CONCURRENCY = ConsumerSettings().concurrency
DEFAULT_PRODUCER = ProducerSettings()
# (label, producer.poll_interval_s): the defaults first, then a shorter interval (nothing is held
# back any more; idle_poll_interval_s stays at its default: 20 payments/s keep the company busy)
SHORT_POLL_S = 0.1
LATENCY_SETTINGS = (
    ("defaults", DEFAULT_PRODUCER.poll_interval_s),
    (f"poll{SHORT_POLL_S:g}", SHORT_POLL_S),
)


@dataclass
class ApplyResult:
    label: str
    payments: int
    vouchers: int
    markers: int
    seconds: float  # first to last voucher
    wall_s: float  # consumer start to last voucher
    payments_per_s: float
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    calls_total: int = 0
    rate_limited: int = 0
    most_open: int = 0  # the most PowerOffice requests the sandbox had open at once
    retries_rate_limited: int = 0
    dead_letters: int = 0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0  # the consumer process, start to finish (start-up included)
    load: float = 0.0  # 1-minute load average at the end
    ceiling_per_s: float | None = None  # (a) the same lanes' round trips without vb2po, measured in this run


@dataclass
class ReplayResult:
    events: int
    skipped: int
    seconds: float
    events_per_s: float
    cpu_us_per_event: float
    load: float
    posts: int
    calls_total: int
    peak_rss_mb: float
    backlog_applied: int
    backlog_s: float
    backlog_peak_rss_mb: float
    backlog_rss_at_s: list[tuple[float, float]]
    ceiling_per_s: float = float("nan")  # a bare kafka-python read of the same events, measured in this run



def _wait(what: str, done, processes: list[Vb2poProcess], *, timeout: float, note=None, every_s: float = 2.0,
          interval: float = 0.2, progress_of=None, stall_s: float = 90.0) -> None:
    """Until `done()`; fails when a process dies, at the deadline, or when `progress_of()` has not
    moved for `stall_s` (then the processes' thread stacks go to their logs: SIGUSR1)."""
    deadline = time.monotonic() + timeout
    last = moved_at = time.monotonic()
    seen = progress_of() if progress_of else None
    while not done():
        for p in processes:
            p.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f}s")
        if progress_of is not None:
            now_seen = progress_of()
            if now_seen != seen:
                seen, moved_at = now_seen, time.monotonic()
            elif time.monotonic() - moved_at > stall_s:
                for p in processes:
                    p.dump_stacks()
                raise TimeoutError(f"{what}: no progress for {stall_s:.0f}s (stuck at {seen}); thread stacks are in "
                                   + ", ".join(str(p.log_file) for p in processes))
        if note and time.monotonic() - last >= every_s:
            last = time.monotonic()
            progress(note())
        time.sleep(interval)


def _apply_all(world: ConsumerWorld, label: str, workdir: Path, timeout: float) -> ApplyResult:
    """Publish the world's payments, run a consumer until every one has its voucher and marker."""
    n = len(world.payments)
    world.publish_payment_events()
    world.reset_sandbox_stats()
    ledger = world.ledger()
    consumer = Vb2poProcess(world.settings_file, "consumer", workdir / f"{label}-consumer.log",
                            metrics_port=world.metrics_port)
    try:
        started = time.monotonic()
        _wait(f"{label}: {n:,} vouchers", lambda: len(ledger.vouchers()) >= n, [consumer], timeout=timeout,
              note=lambda: f"{label}: {len(ledger.vouchers()):,}/{n:,} vouchers", progress_of=lambda: len(ledger.vouchers()))
        wall = time.monotonic() - started
        _wait(f"{label}: {n:,} markers", lambda: world.markers() >= n, [consumer], timeout=60, interval=0.5)
        metrics = consumer.metrics()
        cpu_s = consumer.cpu_seconds()
    finally:
        consumer.stop()
    created = sorted(v.created.timestamp() for v in ledger.vouchers())
    stats = world.sandbox_stats()
    seconds = created[-1] - created[0]
    return ApplyResult(
        label=label, payments=n, vouchers=len(created), markers=world.markers(), seconds=seconds, wall_s=wall,
        payments_per_s=(len(created) - 1) / seconds if seconds > 0 else float("nan"),
        calls=stats["requests"], calls_total=stats["total"], rate_limited=stats["rate_limited"],
        most_open=stats["most_open"],
        retries_rate_limited=int(counter(metrics, "vb2po_consumer_retries_total", reason="rate_limited")),
        dead_letters=int(counter(metrics, "vb2po_consumer_dead_letters_total")),
        peak_rss_mb=consumer.peak_rss_mb, cpu_s=cpu_s, load=os.getloadavg()[0],
    )


def throughput_at_latency(workdir: Path, bootstrap: str, *, payments: int, latency_ms: int) -> ApplyResult:
    world = build_world("a", workdir, bootstrap, payments=payments, seed=21, rate_limit=None, requests_per_second=0)
    try:
        world.sandbox.control.set_faults(latency_ms=latency_ms)
        bound = DEFAULT_CONCURRENCY / (latency_ms / 1000)
        result = _apply_all(world, "a", workdir, timeout=payments / (0.2 * bound) + 120)
        if result.most_open > DEFAULT_CONCURRENCY:  # then the bound is no bound: the figure means nothing
            raise RuntimeError(f"a: the consumer had {result.most_open} PowerOffice requests open at once, more "
                               f"than consumer.concurrency {DEFAULT_CONCURRENCY}")
        result.ceiling_per_s = request_ceiling(world, DEFAULT_CONCURRENCY, CEILING_S)
        return result
    finally:
        world.sandbox.stop()


def request_ceiling(world: ConsumerWorld, lanes: int, seconds: float) -> float:
    """Round trips per second that `lanes` threads get from the sandbox as it is set now (its added
    latency), through vb2po's own PowerOffice client, one invoice look-up each, nothing else: what
    (a) could reach on this machine at this moment. The lanes run in a process of their own, as
    the consumer does (in this one they would share the sandbox's interpreter lock)."""
    settings = to_settings(world.settings_data).poweroffice
    client = dict(api_url=settings.api_url, token_url=settings.token_url,
                  application_key=settings.application_key.get_secret_value(), client_key=CLIENT_KEY,
                  subscription_key=settings.subscription_key.get_secret_value(), timeout=settings.timeout_s)
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    child = context.Process(target=_ceiling_lanes, args=(client, int(world.payments[0].invo_no), lanes, seconds, answers),
                            name="request-ceiling", daemon=True)
    child.start()
    try:
        count, elapsed = answers.get(timeout=seconds + 120)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    progress(f"request ceiling: {lanes} lanes, {count:,} look-ups in {elapsed:.1f}s")
    return count / elapsed


def _ceiling_lanes(client: dict, invoice_no: int, lanes: int, seconds: float, answers) -> None:
    api = PowerOfficeClient(**client)
    api.get_invoices([invoice_no])  # the token, before timing
    counts = [0] * lanes
    deadline = time.monotonic() + seconds

    def lane(i: int) -> None:
        while time.monotonic() < deadline:
            api.get_invoices([invoice_no])
            counts[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers.put((sum(counts), time.monotonic() - started))
    api.close()


def read_ceiling(world: ConsumerWorld, events: int) -> float:
    """Events per second a bare kafka-python consumer with the consumer's client settings reads
    from the payments topic (all partitions from offset 0, records counted, nothing decoded):
    the most (c) could reach on this machine at this moment."""
    kafka = world.kafka
    reader = event_consumer(kafka, group_id=None, max_poll_records=ConsumerSettings().max_records)
    try:
        partitions = partitions_of(reader, kafka.topics.payments)
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        count, first = 0, None
        deadline = time.monotonic() + 300
        while count < events and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=500).values():
                if first is None:
                    first = time.monotonic()
                count += len(records)
        if first is None or count < events:
            raise RuntimeError(f"the bare read got {count:,} of {events:,} events")
        seconds = time.monotonic() - first
    finally:
        reader.close()
    progress(f"read ceiling: {count:,} events in {seconds:.1f}s")
    return count / seconds


def at_rate_limit(workdir: Path, bootstrap: str, *, payments: int) -> ApplyResult:
    world = build_world("b", workdir, bootstrap, payments=payments, seed=22, rate_limit=10, requests_per_second=10)
    try:
        return _apply_all(world, "b", workdir, timeout=payments / 5 + 120)
    finally:
        world.sandbox.stop()


def replay(workdir: Path, bootstrap: str, *, events: int, latency_ms: int, memory_s: float) -> ReplayResult:
    world = build_world("c", workdir, bootstrap, payments=events, seed=23, rate_limit=None, requests_per_second=0)
    try:
        world.publish_payment_events()
        ledger = world.ledger()

        # 1. Peak memory while working through the 100,000-event backlog (applying, 100 ms per call).
        world.sandbox.control.set_faults(latency_ms=latency_ms)
        progress(f"c: a consumer works through the {events:,}-event backlog for {memory_s:g}s (RSS sampled)")
        backlog = Vb2poProcess(world.settings_file, "consumer", workdir / "c-backlog-consumer.log",
                               metrics_port=world.metrics_port)
        try:
            started = time.monotonic()
            _wait("c: backlog run", lambda: time.monotonic() - started >= memory_s, [backlog], timeout=memory_s + 5,
                  note=lambda: f"c: {len(ledger.vouchers()):,} applied, RSS {backlog.peak_rss_mb:.0f} MB peak",
                  every_s=5)
        finally:
            backlog.stop()
        backlog_applied = len(ledger.vouchers())
        world.sandbox.control.clear_faults()
        rss_trace = [(t, rss / 1e6) for t, rss in backlog.rss_samples[:: max(1, len(backlog.rss_samples) // 20)]]

        # 2. Every row marked: a new group replays all events from offset 0.
        marked = world.mark_all_payments()
        progress(f"c: {backlog_applied:,} payments were applied; {marked:,} more rows marked in Visma; replaying "
                 f"{events:,} events through a new consumer group")
        world.reset_sandbox_stats()
        group = world.settings_data["kafka"]["consumer_group"] + "-replay"
        consumer = Vb2poProcess(world.settings_file, "consumer", workdir / "c-replay-consumer.log",
                                metrics_port=world.metrics_port, args=("--group", group))
        samples: list[tuple[float, float, float, float]] = []  # (time, consumed, skipped, CPU seconds)

        def done() -> bool:
            m = consumer.metrics()
            if m:
                samples.append((time.monotonic(), counter(m, "vb2po_consumer_events_consumed_total"),
                                counter(m, "vb2po_consumer_events_skipped_total"), consumer.cpu_seconds()))
            return bool(samples) and samples[-1][2] >= events

        try:
            _wait(f"c: {events:,} events replayed", done, [consumer], timeout=events / 500 + 120, interval=0.05,
                  note=lambda: f"c: {int(samples[-1][2]) if samples else 0:,}/{events:,} replayed",
                  progress_of=lambda: samples[-1][2] if samples else 0)
        finally:
            consumer.stop()
        first = next(i for i, s in enumerate(samples) if s[1] > 0)
        # the consumer was already at work for up to one sampling interval before samples[first]
        start = (samples[first][0] + samples[max(0, first - 1)][0]) / 2
        seconds = samples[-1][0] - start
        cpu_us = (samples[-1][3] - samples[max(0, first - 1)][3]) / events * 1e6
        stats = world.sandbox_stats()
        posts = sum(stats["requests"].get(POST_VOUCHER, {}).values())
        load = os.getloadavg()[0]
        ceiling = read_ceiling(world, events)
        return ReplayResult(events, int(samples[-1][2]), seconds, events / seconds, cpu_us, load, posts,
                            stats["total"], consumer.peak_rss_mb, backlog_applied, memory_s, backlog.peak_rss_mb,
                            rss_trace, ceiling)
    finally:
        world.sandbox.stop()


# -- report -------------------------------------------------------------------------------
def _calls(result: ApplyResult) -> str:
    parts = []
    for endpoint, by_status in sorted(result.calls.items()):
        parts.append(f"{endpoint} " + " ".join(f"{s}x{n}" for s, n in sorted(by_status.items())))
    return "; ".join(parts)


def crc32c_implementation() -> str:
    """kafka-python checks every fetched batch's CRC32C: in C with the `crc32c` package, else in Python."""
    from kafka.record import util

    return "C (crc32c package)" if getattr(util, "crc32c_c", None) else "pure Python (no crc32c package)"


def report(a: ApplyResult | None, b: ApplyResult | None, c: ReplayResult | None, d: list[LatencyResult],
           latency_ms: int, wall_s: float) -> list[str]:
    lines = ["", "Consumer benchmark (real `vb2po consumer` processes; 1-node Kafka; SQLite Visma over ODBC; "
                 "sandbox on 127.0.0.1)", f"kafka-python CRC32C: {crc32c_implementation()}", ""]
    if a:
        bound = DEFAULT_CONCURRENCY / (latency_ms / 1000)
        lines += [
            f"(a) {a.payments:,} payments, {latency_ms} ms added latency, no rate limit, concurrency {DEFAULT_CONCURRENCY}:",
            f"    {a.payments_per_s:.1f} payments/s first to last voucher ({a.seconds:.1f}s) = "
            f"{100 * a.payments_per_s / bound:.1f} % of the bound {bound:.0f}/s; {a.payments / a.wall_s:.1f}/s from "
            f"process start ({a.wall_s:.1f}s)",
            f"    ceiling measured in this run: {_fmt(a.ceiling_per_s, '.1f')} round trips/s ({DEFAULT_CONCURRENCY} lanes, "
            f"same latency, vb2po's PowerOffice client, nothing else) -> "
            f"{_fmt(_ratio(a.payments_per_s, a.ceiling_per_s), '.0f')} %",
            f"    vouchers {a.vouchers:,}, markers {a.markers:,}, dead letters {a.dead_letters}, "
            f"peak RSS {a.peak_rss_mb:.0f} MB; "
            f"consumer CPU {a.cpu_s / a.payments * 1e3:.2f} ms/payment (start-up included); load {a.load:.1f}",
            f"    at most {a.most_open} PowerOffice requests open at once (the sandbox's count; consumer.concurrency "
            f"{DEFAULT_CONCURRENCY}: the bound assumes no more)",
            f"    calls: {_calls(a)}",
        ]
    if b:
        lines += [
            f"(b) {b.payments:,} payments, sandbox limit 10/s, poweroffice.requests_per_second 10:",
            f"    {b.payments_per_s:.2f} payments/s sustained (first to last voucher, {b.seconds:.1f}s); "
            f"{b.payments / b.wall_s:.2f}/s from process start",
            f"    {b.calls_total / b.payments:.3f} calls/payment ({b.calls_total:,} calls the sandbox saw, all endpoints, "
            f"token and start-up look-ups included); {b.rate_limited} answered 429, {b.retries_rate_limited} retried; "
            f"dead letters {b.dead_letters}; peak RSS {b.peak_rss_mb:.0f} MB; load {b.load:.1f}",
            f"    calls: {_calls(b)}",
        ]
    if c:
        lines += [
            f"(c) replay of {c.events:,} already-applied events through a new group: {c.events_per_s:,.0f} events/s "
            f"({c.seconds:.1f}s), consumer CPU {c.cpu_us_per_event:.0f} µs/event; PowerOffice writes {c.posts}, calls of "
            f"any kind {c.calls_total}; peak RSS {c.peak_rss_mb:.0f} MB; load {c.load:.1f}",
            f"    ceiling measured in this run: a bare kafka-python read of the same events, {c.ceiling_per_s:,.0f} events/s "
            f"-> {_fmt(_ratio(c.events_per_s, c.ceiling_per_s), '.0f')} %",
            f"    backlog run ({c.events:,} events waiting, {latency_ms} ms latency, {c.backlog_s:g}s): "
            f"{c.backlog_applied:,} applied, peak RSS {c.backlog_peak_rss_mb:.0f} MB",
            "    RSS over the backlog run: " + ", ".join(f"{t:.0f}s {mb:.0f}MB" for t, mb in c.backlog_rss_at_s),
        ]
    if d:
        lines.append(f"(d) payments inserted into Visma at {d[0].rate_per_s:g}/s, {d[0].latency_ms} ms added API latency, "
                     "Visma commit -> voucher in the sandbox:")
        for r in d:
            lines.append(
                f"    {r.label:<8} (poll_interval_s {r.poll_interval_s:g}): p50 {r.p50_s:.2f}s p90 {r.p90_s:.2f}s "
                f"p99 {r.p99_s:.2f}s max {r.max_s:.2f}s ({r.arrived:,}/{r.inserted:,}); commit->Kafka p50 "
                f"{r.to_kafka_p50_s:.2f}s p99 {r.to_kafka_p99_s:.2f}s, Kafka->voucher p50 {r.kafka_to_voucher_p50_s:.2f}s "
                f"p99 {r.kafka_to_voucher_p99_s:.2f}s; dead letters {r.dead_letters}; load {r.load:.1f}")
    lines += ["", f"wall time {wall_s:.0f}s"]
    return lines


def _ratio(rate: float | None, ceiling: float | None) -> float | None:
    return None if rate is None or not ceiling or math.isnan(ceiling) else 100 * rate / ceiling


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def summary_line(a: ApplyResult | None, b: ApplyResult | None, c: ReplayResult | None, d: list[LatencyResult],
                 latency_ms: int) -> str:
    bound = DEFAULT_CONCURRENCY / (latency_ms / 1000)
    share = 100 * a.payments_per_s / bound if a else None
    defaults = next((r for r in d if r.label == "defaults"), None)
    peaks = [x for x in (c.peak_rss_mb if c else None, c.backlog_peak_rss_mb if c else None) if x]
    return (f"consumer: {_fmt(share, '.1f')} of bound %, {_fmt(b.payments_per_s if b else None, '.2f')} payments/s at limit, "
            f"{_fmt(b.calls_total / b.payments if b else None, '.3f')} calls/payment, "
            f"{_fmt(c.events_per_s if c else None, '.0f')} replay events/s, "
            f"latency p50 {_fmt(defaults.p50_s if defaults else None, '.2f')} s "
            f"p99 {_fmt(defaults.p99_s if defaults else None, '.2f')} s, "
            f"peak RSS {_fmt(max(peaks) if peaks else None, '.0f')} MB, "
            f"{_fmt(_ratio(a.payments_per_s, a.ceiling_per_s) if a else None, '.0f')}% (a) and "
            f"{_fmt(_ratio(c.events_per_s, c.ceiling_per_s) if c else None, '.0f')}% (c) of the ceilings measured in this run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="a,b,c,d", help="which parts to run (default a,b,c,d)")
    parser.add_argument("--payments-a", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=100, help="added sandbox latency in (a), (c)'s backlog run and (d)")
    parser.add_argument("--payments-b", type=int, default=1_000, help="payments at the rate limit (default 1,000)")
    parser.add_argument("--replay", type=int, default=100_000, help="backlog / replay size in (c)")
    parser.add_argument("--memory-s", type=float, default=40.0, help="how long the backlog run samples RSS")
    parser.add_argument("--latency-duration-s", type=float, default=60.0, help="insert time per setting in (d)")
    parser.add_argument("--latency-rate", type=float, default=20.0, help="payments inserted per second in (d)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs, settings and databases")
    args = parser.parse_args(argv)
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    if steps - set("abcd"):
        parser.error(f"unknown step(s) in {args.steps!r}; choose from a,b,c,d")

    stop_on_sigterm()
    started = time.monotonic()
    a = b = c = None
    d: list[LatencyResult] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="vb2po-bench-consumer-"))
        if args.keep_workdir:
            progress(f"workdir {workdir} (kept)")
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        step("starting a 1-node Kafka broker")
        kafka = KafkaCluster(nodes=1)
        stack.callback(kafka.stop)
        kafka.start()
        bootstrap = kafka.bootstrap_servers
        if "a" in steps:
            step(f"(a) {args.payments_a:,} payments, {args.latency_ms} ms latency, no rate limit")
            a = throughput_at_latency(workdir, bootstrap, payments=args.payments_a, latency_ms=args.latency_ms)
            progress(f"a: {a.payments_per_s:.1f} payments/s")
        if "b" in steps:
            step(f"(b) {args.payments_b:,} payments at the 10 requests/s limit")
            b = at_rate_limit(workdir, bootstrap, payments=args.payments_b)
            progress(f"b: {b.payments_per_s:.2f} payments/s, {b.calls_total / b.payments:.3f} calls/payment")
        if "c" in steps:
            step(f"(c) backlog of {args.replay:,} events: memory, then replay of them all")
            c = replay(workdir, bootstrap, events=args.replay, latency_ms=args.latency_ms, memory_s=args.memory_s)
            progress(f"c: {c.events_per_s:,.0f} events/s, {c.posts} PowerOffice writes")
        if "d" in steps:
            for label, poll_s in LATENCY_SETTINGS:
                step(f"(d) {args.latency_rate:g} payments/s inserted into Visma, {label}: poll_interval_s {poll_s:g}")
                d.append(consumer_latency.run(label, workdir, bootstrap, poll_interval_s=poll_s,
                                              rate_per_s=args.latency_rate, duration_s=args.latency_duration_s,
                                              latency_ms=args.latency_ms))
        step("stopping the broker")
    for line in report(a, b, c, d, args.latency_ms, time.monotonic() - started):
        print(line)
    print(summary_line(a, b, c, d, args.latency_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())

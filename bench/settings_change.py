"""`make bench-settings`: how fast a settings change made with `vb2po config set` reaches every
process, and what it costs the payments flowing meanwhile.

    .venv/bin/python -m bench.settings_change [--changes 10] [--consumers 2]

A real producer (serving the admin API) and `--consumers` real consumer processes run against a
1-node broker, a SQLite Visma company over ODBC and the sandbox, at the default producer settings.
Then, `--changes` times, alternately:
  - baseline: one payment is inserted into Visma; the time until its voucher is in the sandbox;
  - change: `PATCH /v1/config` moves `lookback_date` by a day (checked against Visma like any
    change), then the time until every process's /metrics shows the new `vb2po_settings_version`,
    and the time until a payment inserted right after the change has its voucher (the consumers
    re-join their group with the new settings on the way).
Every payment must arrive exactly once. Progress goes to stderr; the report to stdout, its last
line `settings: propagation p50 <x> s max <y> s; payment after a change p50 <a> s vs <b> s without`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from admin.api.token_store import KafkaTokenStore
from admin.api.tokens import issue
from bench.consumer_latency import LivePayments, percentile
from bench.consumer_process import Vb2poProcess
from bench.consumer_world import build_world, external_import_reference, progress, step
from devstack.dataset import invoices
from devstack.kafka import KafkaCluster
from devstack.ports import free_ports
from devstack.stack import to_settings, write_settings
from vb2po.kafka.topics import ensure_topics
from vb2po.settings import ProducerSettings

FIRST_LOOKBACK = date(2025, 12, 1)


def wait(what: str, condition, processes: list[Vb2poProcess], timeout: float = 120, every_s: float = 0.02) -> float:
    """Seconds until `condition()` holds; fails when a process died or at the deadline."""
    started = time.monotonic()
    while not condition():
        for p in processes:
            p.check_alive()
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(every_s)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.settings_change", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--consumers", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.monotonic()
    propagation: list[float] = []
    patch_s: list[float] = []
    after_change: list[float] = []
    baseline: list[float] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="vb2po-bench-settings-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        step("starting a 1-node Kafka broker")
        kafka = KafkaCluster(nodes=1)
        stack.callback(kafka.stop)
        kafka.start()
        world = build_world("settings", workdir, kafka.bootstrap_servers, payments=200, seed=51, rate_limit=None,
                            requests_per_second=0, mark_all=True)  # the producer at its defaults
        stack.callback(world.sandbox.stop)
        ports = free_ports(2 + args.consumers)
        data = {**world.settings_data, "lookback_date": FIRST_LOOKBACK.isoformat(),
                "admin": {"enabled": True, "port": ports[0], "groups": [{"name": "ops", "permissions": ["integration"]}],
                          "users": [{"name": "bench", "groups": ["ops"]}]}}
        settings = to_settings(data)
        ensure_topics(settings.kafka)
        issued = issue("bench", created_by="bench", now=datetime.now(timezone.utc), ttl=timedelta(hours=2))
        tokens = KafkaTokenStore(settings.kafka)
        tokens.put(issued.record)
        tokens.close()

        processes = []
        for i, (command, port) in enumerate([("producer", ports[1])] + [("consumer", p) for p in ports[2:]]):
            path = write_settings(workdir / f"{command}-{i}.yaml", {**data, "metrics_port": port})
            processes.append(Vb2poProcess(path, command, workdir / f"{command}-{i}.log", metrics_port=port))
            stack.callback(processes[-1].stop)

        live = LivePayments(world.connection_string,
                            [(i.cust_no, i.invoice_no) for i in invoices(world.spec) if i.balance_before_sync > 0],
                            ZoneInfo(data["visma_timezone"]))
        stack.callback(live.close)
        ledger = world.ledger()

        def vouchers(key) -> int:
            reference = external_import_reference(*key)
            return sum(1 for v in ledger.vouchers() if v.draft.external_import_reference == reference)

        def version_everywhere(version: int) -> bool:
            return all(p.metrics().get("vb2po_settings_version") == version for p in processes)

        probe = live.insert_one()
        wait("the probe payment", lambda: vouchers(probe) == 1, processes, timeout=180, every_s=0.1)
        progress(f"pipeline up: producer and {args.consumers} consumers, probe applied")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {issued.token}"
        admin = f"http://127.0.0.1:{ports[0]}"
        paid = [probe]
        for n in range(1, args.changes + 1):
            key = live.insert_one()
            paid.append(key)
            baseline.append(wait("a payment without a change", lambda key=key: vouchers(key) == 1, processes))

            lookback = FIRST_LOOKBACK + timedelta(days=n % 2)
            t0 = time.monotonic()
            answer = api.patch(f"{admin}/v1/config", json={"set": {"lookback_date": lookback.isoformat()}}, timeout=60)
            patch_s.append(time.monotonic() - t0)
            answer.raise_for_status()
            key = live.insert_one()
            inserted = time.monotonic()
            paid.append(key)
            version = answer.json()["version"]
            propagation.append(patch_s[-1] + wait(f"settings version {version} everywhere",
                                                  lambda version=version: version_everywhere(version), processes))
            wait("the payment after the change", lambda key=key: vouchers(key) == 1, processes)
            after_change.append(time.monotonic() - inserted)
            progress(f"change {n}/{args.changes}: version {version} everywhere after {propagation[-1]:.2f}s "
                     f"(PATCH {patch_s[-1]:.2f}s); payment after it {after_change[-1]:.2f}s, without {baseline[-1]:.2f}s")
        doubled = [k for k in paid if vouchers(k) != 1]
        if doubled:
            raise RuntimeError(f"payments not registered exactly once: {doubled}")
        step("stopping")

    print("Settings change benchmark (real `vb2po producer` + consumers; 1-node Kafka; SQLite Visma; sandbox)")
    p = ProducerSettings()
    print(f"{args.changes} changes of lookback_date through PATCH /v1/config, {args.consumers} consumers, "
          f"producer at its defaults (poll {p.poll_interval_s:g} s, idle {p.idle_poll_interval_s:g} s)")
    print(f"  PATCH answered (checks against Visma, stored, producer applied): p50 {percentile(patch_s, 50):.2f}s, "
          f"max {max(patch_s):.2f}s")
    print(f"  every process on the new version: p50 {percentile(propagation, 50):.2f}s, max {max(propagation):.2f}s")
    print(f"  a payment inserted right after a change, to its voucher: p50 {percentile(after_change, 50):.2f}s, "
          f"max {max(after_change):.2f}s; without a change: p50 {percentile(baseline, 50):.2f}s, max {max(baseline):.2f}s")
    print(f"  {len(paid)} payments, each registered exactly once; wall time {time.monotonic() - started:.0f}s")
    print(f"settings: propagation p50 {percentile(propagation, 50):.2f} s max {max(propagation):.2f} s; payment after a "
          f"change p50 {percentile(after_change, 50):.2f} s vs {percentile(baseline, 50):.2f} s without")
    return 0


if __name__ == "__main__":
    sys.exit(main())

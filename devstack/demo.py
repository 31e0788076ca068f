"""`make demo`: the whole sync on the embedded defaults, started and stopped by itself.

Starts a one-node Kafka broker, the PowerOffice sandbox and a Visma company in a SQLite file
(through the SQLite ODBC driver), all seeded from one dataset; runs `vb2po producer` and
`vb2po consumer` as real processes until every payment after the lookback date is registered
and marked; checks every invoice balance; prints a summary and stops everything.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import yaml

from devstack.dataset import DatasetSpec, customers, invoices, payment_rows
from devstack.kafka import KafkaCluster
from devstack.stack import LocalClient, settings_dict, write_settings
from devstack.visma_seed import seed_company, sqlite_connection_string
from sandbox.filters import NumberFilter
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.visma.db import VismaDatabase

ROOT = Path(__file__).resolve().parent.parent
CLIENT_KEY = "demo-client"
LOOKBACK = date(2026, 1, 1)


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def demo_settings(kafka: KafkaCluster, sandbox: SandboxServer, conn_str: str) -> dict:
    """settings.example.yaml, pointed at the local stack."""
    example = yaml.safe_load((ROOT / "settings.example.yaml").read_text())
    local = settings_dict(
        bootstrap_servers=kafka.bootstrap_servers, api_url=sandbox.api_url, token_url=sandbox.token_url,
        application_key=sandbox.application_key, subscription_key=sandbox.subscription_key,
        clients=[LocalClient("demo", CLIENT_KEY, 1, conn_str)], lookback=LOOKBACK, namespace="demo",
    )
    example.update({k: local[k] for k in ("companies", "invoice_clients", "poweroffice", "kafka", "lookback_date")})
    example["metrics_port"] = 0
    # The example grants users its own invoice clients by name; here they get the demo's.
    names = [client["name"] for client in example["invoice_clients"]]
    for user in (example.get("admin") or {}).get("users") or []:
        if user.get("clients"):
            user["clients"] = names
    return example


def start_service(name: str, settings_path: Path, workdir: Path) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "w")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "vb2po"), "--config", str(settings_path), name],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_service(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def markers_written(db: VismaDatabase) -> int:
    return list(db.query('SELECT COUNT(*) FROM "CustTr" WHERE "Gr4" = 1'))[0][0]


def blocked_in_poweroffice(sandbox: SandboxServer, blocked: list[int]) -> int:
    """Customers blocked in Visma whose every PowerOffice project has time tracking denied."""
    by_customer: dict[int, list[bool]] = defaultdict(list)
    for project in sandbox.state.ledgers[CLIENT_KEY].projects(NumberFilter(frozenset(blocked), ())):
        if project.customer_no is not None:
            by_customer[project.customer_no].append(project.deny_time_tracking)
    return sum(1 for c in blocked if by_customer.get(c) and all(by_customer[c]))


def check_balances(sandbox: SandboxServer, spec: DatasetSpec) -> tuple[int, list[str]]:
    """Every invoice's PowerOffice balance equals its balance less the payments after lookback."""
    paid: dict[int, Decimal] = defaultdict(Decimal)
    for row in payment_rows(spec, on_or_after=LOOKBACK):
        paid[int(row.invo_no)] += -row.am
    expected = {i.invoice_no: i.balance_before_sync - paid[i.invoice_no] for i in invoices(spec)}
    with PowerOfficeClient(api_url=sandbox.api_url, token_url=sandbox.token_url,
                           application_key=sandbox.application_key, client_key=CLIENT_KEY,
                           subscription_key=sandbox.subscription_key) as client:
        actual = {i.invoice_no: i.balance for i in client.get_invoices(sorted(expected))}
    wrong = [f"invoice {n}: PowerOffice {actual.get(n)} != expected {b}" for n, b in expected.items() if actual.get(n) != b]
    return len(expected), wrong


def run(size: int, timeout_s: float) -> int:
    workdir = ROOT / ".work" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    spec = DatasetSpec(size=size, seed=42)
    expected = sum(1 for _ in payment_rows(spec, on_or_after=LOOKBACK))
    blocked = [c.cust_no for c in customers(spec) if c.credit_blocked]
    started = time.monotonic()

    say("starting a one-node Kafka broker (KRaft) ...")
    with KafkaCluster(nodes=1, workdir=workdir / "kafka") as kafka:
        say(f"Kafka ready at {kafka.bootstrap_servers}; starting the PowerOffice sandbox ...")
        with SandboxServer([ClientSeed(CLIENT_KEY, spec)], SandboxConfig()) as sandbox:
            say(f"sandbox ready at {sandbox.base_url} (10 requests/second limit on)")
            conn_str = sqlite_connection_string(workdir / "F0001.db")
            db = VismaDatabase(conn_str)
            rows = seed_company(db, spec)
            say(f"Visma company 1 (SQLite over ODBC): {rows} CustTr rows, {expected} payments on or after {LOOKBACK}")
            settings_path = write_settings(workdir / "settings.yaml", demo_settings(kafka, sandbox, conn_str))
            procs = [start_service(n, settings_path, workdir) for n in ("producer", "consumer")]
            try:
                applied = marked = stopped = -1
                last_shown: tuple[int, int, int] | None = None
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    applied = sandbox.state.ledgers[CLIENT_KEY].summary().vouchers
                    marked = markers_written(db)
                    stopped = blocked_in_poweroffice(sandbox, blocked)
                    if (applied, marked, stopped) != last_shown:
                        say(f"{applied}/{expected} payments applied, {marked} markers written, "
                            f"{stopped}/{len(blocked)} credit-blocked customers blocked in PowerOffice")
                        last_shown = (applied, marked, stopped)
                    if applied >= expected and marked >= expected and stopped >= len(blocked):
                        break
                    for proc in procs:
                        if proc.poll() is not None:
                            say(f"a service exited early (code {proc.returncode}); see {workdir}/*.log")
                            return 1
                    time.sleep(0.5)
            finally:
                for proc in procs:
                    stop_service(proc)
            checked, wrong = check_balances(sandbox, spec)
            db.close()
    say(f"stack stopped; logs and settings in {workdir.relative_to(ROOT)}/")
    say(f"{checked} invoice balances checked against Visma: {'all right' if not wrong else f'{len(wrong)} wrong'}")
    say(f"{stopped}/{len(blocked)} customers with a credit block in Visma have time registration blocked in PowerOffice")
    for line in wrong[:10]:
        say("  " + line)
    say(f"wall time {time.monotonic() - started:.1f}s")
    print(f"demo: {applied}/{expected} payments applied, {marked} markers written", flush=True)
    return 0 if applied == expected and marked == expected and stopped == len(blocked) and not wrong else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("--size", type=int, default=300, help="CustTr rows to generate (default 300)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the sync (default 300)")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so everything started is stopped again.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return run(args.size, args.timeout)


if __name__ == "__main__":
    sys.exit(main())

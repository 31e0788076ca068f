"""`make chaos`: an operator's worst day on real processes, and the proof that nothing is lost or
doubled and nothing stalls for long.

The stack, all on 127.0.0.1 and stopped at the end (also on failure, Ctrl-C or SIGTERM):
- a 3-node Kafka KRaft cluster (`devstack.kafka`): every topic, the internal ones too, with 3
  replicas and `min.insync.replicas` 2; a dead broker is fenced after 4 s;
- the Visma company F0001 in PostgreSQL over psqlODBC, seeded from the dataset (customers and
  invoices; its own payments lie before the lookback date, so only the run's payments transfer);
- the PowerOffice sandbox with reference uniqueness **off**: it accepts a second voucher with the
  same `ExternalImportReference`, so a duplicate would really show;
- real processes: one `vb2po producer` and two `vb2po consumer` (static members `consumer-1` and
  `consumer-2`), each started again 0.5-2 s after it dies, as Kubernetes would;
- an inserter thread (`tests.chaos.inserter`) writing new payments into `CustTr` in small
  transactions for the whole run.

Phases:
1. **kills**: at least `--payments` (5,000) payments inserted and `--kills` (100) SIGKILLs of the
   producer or either consumer, chosen at random.
2. **faults** (`--fault-seconds`, 240 s): 20 % of PowerOffice calls answered 503, 5 % of writes
   with their answer lost (handled, then the connection dropped), two windows of 429s (the
   sandbox's rate limit lowered to 8/s while the consumers send up to 40/s), a SIGKILL of the broker
   that leads the most partitions of the payments topic (started again a minute later), a hard stop
   of PostgreSQL for `--db-down` (20) s, SIGKILLs every 8-16 s, payments still inserted.
3. **drain**: faults off, no more inserts or kills; wait until every payment is registered and
   marked (with a deadline and progress lines).

Then the check, and the last line:
`chaos: <payments> payments, <kills> kills, <lost> lost, <dup> duplicate, <markers> markers, longest stall <s> s, drain <d> s`
- payments: rows the inserter committed (all are payments vb2po must transfer);
- lost: those without a voucher in the sandbox at the end; duplicate: references with more than
  one voucher; markers: `CustTr` rows carrying the processed marker (must equal payments);
- every PowerOffice invoice balance must equal its opening balance minus the payments Visma holds
  for it from the lookback date on (mismatches are listed and fail the run);
- longest stall: see `tests.chaos.watch` (database downtime excluded);
- drain: seconds from the end of the fault phase until everything was registered and marked.
The exit status is 1 when anything is lost or doubled, a marker or a balance is wrong, the drain
missed its deadline, or the longest stall exceeds 15 s. A stall over 20 s makes every vb2po
process print its threads' stacks to its log (SIGUSR1), and `py-spy dump` them when installed.
Logs, settings and the timeline stay in the work folder printed at the start.
"""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyodbc

from consumer.payments import external_import_reference
from devstack.dataset import DatasetSpec, invoices
from devstack.kafka import KafkaCluster
from devstack.postgres import PostgresServer
from devstack.stack import LocalClient, settings_dict, write_settings
from devstack.visma_seed import seed_company
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from tests.chaos.fleet import Fleet, Member
from tests.chaos.inserter import Inserter, OpenInvoice
from tests.chaos.watch import Watch
from vb2po.visma.db import VismaDatabase

OSLO = ZoneInfo("Europe/Oslo")
CLIENT_KEY = "client-chaos"
COMPANY_NO = 1
FIRST_JNO = 100_000  # the run's journals; the seeded ones are far below
STALL_LIMIT_S = 15.0
DUMP_AFTER_S = 20.0
PROGRESS_S = 10.0
REQUESTS_PER_SECOND = 40  # the consumers' budget and the sandbox's limit (PowerOffice's real one is 10/s)
LIMIT_429 = 8  # the sandbox's limit in the 429 windows

# Every node: replicated internal topics, 2 in sync for a write, a dead broker fenced within ~4 s.
KAFKA_PROPERTIES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "6",
    "broker.session.timeout.ms": "4000",
    "broker.heartbeat.interval.ms": "500",
}


def progress(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    payments: int = 5000
    kills: int = 100
    rate: float = 10.0  # payments/s inserted in phase 1
    fault_s: float = 240.0
    fault_rate: float = 5.0  # payments/s inserted in phase 2
    fault_kill_gap: tuple[float, float] = (8.0, 16.0)
    db_down_s: float = 20.0
    drain_timeout_s: float = 600.0
    restart_delay: tuple[float, float] = (0.5, 2.0)
    seed: int = 1

    @property
    def kill_gap(self) -> tuple[float, float]:
        """Kills spread evenly over the time the payments take to insert."""
        mean = self.payments / self.rate / max(1, self.kills)
        return mean * 0.5, mean * 1.5


@dataclass
class Report:
    payments: int = 0
    kills: int = 0
    lost: int = 0
    duplicate: int = 0
    markers: int = 0
    longest_stall: float = 0.0
    drain_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        drain = "-" if self.drain_s is None else f"{self.drain_s:.0f}"
        return (f"chaos: {self.payments} payments, {self.kills} kills, {self.lost} lost, {self.duplicate} duplicate, "
                f"{self.markers} markers, longest stall {self.longest_stall:.1f} s, drain {drain} s")

    @property
    def ok(self) -> bool:
        return (not self.problems and self.lost == 0 and self.duplicate == 0 and self.markers == self.payments
                and self.longest_stall <= STALL_LIMIT_S and self.drain_s is not None)


class Chaos:
    def __init__(self, plan: Plan, workdir: Path):
        self.plan = plan
        self.workdir = workdir
        self.rng = random.Random(plan.seed)
        self.today = datetime.now(OSLO).date()
        self.lookback = self.today - timedelta(days=30)
        # Customers and invoices from a year before the lookback date: their own payments do not transfer.
        self.spec = DatasetSpec(size=4000, seed=plan.seed, first_date=self.today - timedelta(days=400),
                                last_date=self.today - timedelta(days=60))
        self.timeline = open(workdir / "timeline.log", "a")
        self.pg: PostgresServer | None = None
        self.cluster: KafkaCluster | None = None
        self.sandbox: SandboxServer | None = None
        self.fleet: Fleet | None = None
        self.inserter: Inserter | None = None
        self.watch: Watch | None = None
        self.conn_str = ""
        self.payments_topic = ""
        self.phase = "setup"
        self.phase_started = time.monotonic()
        self._background: list[threading.Thread] = []
        self._next_progress = 0.0
        self._dumped = False
        self._markers_conn: pyodbc.Connection | None = None

    # -- the timeline ----------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.timeline.write(f"{time.strftime('%H:%M:%S')} [{self.phase}] {text}\n")
        self.timeline.flush()

    def say(self, text: str) -> None:
        self.note(text)
        progress(text)

    # -- setting up ------------------------------------------------------------------------
    def start_stack(self) -> None:
        started = time.monotonic()
        self.pg = PostgresServer()
        pg_thread = threading.Thread(target=self.pg.start, name="pg-start", daemon=True)
        pg_thread.start()
        self.cluster = KafkaCluster(nodes=3, properties=KAFKA_PROPERTIES).start(timeout=180)
        pg_thread.join(120)
        if not self.pg.port:
            raise RuntimeError("PostgreSQL did not start")
        self.say(f"3 Kafka nodes ({self.cluster.bootstrap_servers}) and PostgreSQL (port {self.pg.port}) up in "
                 f"{time.monotonic() - started:.0f} s")
        self.sandbox = SandboxServer([ClientSeed(CLIENT_KEY, self.spec)],
                                     SandboxConfig(rate_limit_per_second=REQUESTS_PER_SECOND)).start()
        self.sandbox.control.set_unique_references(False)
        self.conn_str = self.pg.create_database("F0001")
        with VismaDatabase(self.conn_str) as db:
            rows = seed_company(db, self.spec)
        self.say(f"Visma company F0001 seeded ({rows} CustTr rows); sandbox on {self.sandbox.base_url}, "
                 f"reference uniqueness off")

    def write_settings(self) -> dict[str, Path]:
        assert self.sandbox is not None and self.cluster is not None
        namespace = f"chaos-{uuid.uuid4().hex[:8]}"
        data = settings_dict(
            bootstrap_servers=self.cluster.bootstrap_servers, api_url=self.sandbox.api_url,
            token_url=self.sandbox.token_url, application_key=self.sandbox.application_key,
            subscription_key=self.sandbox.subscription_key,
            clients=[LocalClient("chaos", CLIENT_KEY, COMPANY_NO, self.conn_str)], lookback=self.lookback,
            namespace=namespace, partitions=6, poll_interval_s=0.5,
        )
        data["kafka"]["topics"]["replication_factor"] = 3
        data["producer"].update({"sweep_interval_s": 30, "sweep_grace_s": 10})
        data["poweroffice"].update({"requests_per_second": REQUESTS_PER_SECOND})
        self.payments_topic = data["kafka"]["topics"]["payments"]
        files = {"producer": write_settings(self.workdir / "settings-producer.yaml", data)}
        for n in (1, 2):
            data["consumer"] = {"instances": 2, "instance_id": f"consumer-{n}"}
            files[f"consumer-{n}"] = write_settings(self.workdir / f"settings-consumer-{n}.yaml", data)
        return files

    def open_invoices(self) -> list[OpenInvoice]:
        return [OpenInvoice(i.invoice_no, i.cust_no, i.balance_before_sync) for i in invoices(self.spec)]

    # -- running ---------------------------------------------------------------------------
    def run(self) -> Report:
        self.start_stack()
        files = self.write_settings()
        ledger = self.sandbox.state.ledgers[CLIENT_KEY]
        self.watch = Watch(ledger.vouchers)
        members = [Member(name, "producer" if name == "producer" else "consumer", path, self.workdir / f"{name}.log")
                   for name, path in files.items()]
        self.fleet = Fleet(members, self.plan.restart_delay, self.rng, self.note)
        self.fleet.start_all()
        self.inserter = Inserter(self.conn_str, COMPANY_NO, self.open_invoices(), first_jno=FIRST_JNO, rate=1.0,
                                 seed=self.plan.seed, on_inserted=self.watch.payments_inserted)
        self.inserter.start()
        self.warm_up()
        self.watch.start()
        self.phase_kills()
        self.phase_faults()
        drain = self.phase_drain()
        return self.judge(drain)

    def warm_up(self, timeout_s: float = 180) -> None:
        """Until the first payments are registered: topics made, the group joined, caches warm."""
        self.enter("warm-up")
        deadline = time.monotonic() + timeout_s
        while True:
            self.tick()
            inserted, registered = self.watch.counts()
            self.watch.sample()
            if registered >= 3:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no payment registered within {timeout_s:.0f} s of the start; see {self.workdir}")
            time.sleep(0.25)
        self.watch.last_new = time.monotonic()
        self.say(f"warm-up done: {registered} payments registered; the stall clock starts")

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.phase_started = time.monotonic()
        if self.watch is not None:
            self.watch.phase = phase
        self.say(f"phase {phase}")

    def phase_kills(self) -> None:
        plan = self.plan
        self.enter("kills")
        self.inserter.rate = plan.rate
        next_kill = time.monotonic() + self.rng.uniform(*plan.kill_gap)
        while self.watch.counts()[0] < plan.payments or self.fleet.kills < plan.kills:
            if time.monotonic() >= next_kill:
                self.fleet.kill_random()
                next_kill = time.monotonic() + self.rng.uniform(*plan.kill_gap)
            self.tick()
            time.sleep(0.1)

    def phase_faults(self) -> None:
        plan = self.plan
        self.enter("faults")
        control = self.sandbox.control
        self.inserter.rate = plan.fault_rate
        control.reset_stats()  # the figures printed at the end of the phase are the phase's own
        control.set_faults(error_share=0.2, error_status=503, lost_response_share=0.05, lost_response_mode="drop",
                           seed=plan.seed)
        self.note("faults on: 20 % 503, 5 % of writes lose their answer")
        f = plan.fault_s
        broker: list[int] = []
        events = [
            (0.06 * f, "kill the leading broker", lambda: broker.append(self.kill_leading_broker())),
            (0.31 * f, "start the broker again", lambda: self.background(
                "broker-start", lambda: self.cluster.start_node(broker[0]) if broker else None)),
            (0.42 * f, "database hard stop", self.database_hard_stop),
            (0.62 * f, "429 window", lambda: control.set_rate_limit(LIMIT_429)),
            (0.75 * f, "429 window over", lambda: control.set_rate_limit(REQUESTS_PER_SECOND)),
            (0.82 * f, "429 window", lambda: control.set_rate_limit(LIMIT_429)),
            (0.95 * f, "429 window over", lambda: control.set_rate_limit(REQUESTS_PER_SECOND)),
        ]
        started = time.monotonic()
        next_kill = started + self.rng.uniform(*plan.fault_kill_gap)
        while time.monotonic() - started < f or any(t.is_alive() for t in self._background):
            elapsed = time.monotonic() - started
            while events and elapsed >= events[0][0]:
                _, what, action = events.pop(0)
                self.say(what)
                action()
            if time.monotonic() >= next_kill and elapsed < f:
                self.fleet.kill_random()
                next_kill = time.monotonic() + self.rng.uniform(*plan.fault_kill_gap)
            self.tick()
            time.sleep(0.1)
        control.clear_faults()
        control.set_rate_limit(REQUESTS_PER_SECOND)
        stats = control.stats()["requests"]
        self.say("faults off; PowerOffice calls in the phase: " + ", ".join(
            f"{endpoint} {dict(sorted(by_status.items()))}" for endpoint, by_status in sorted(stats.items())
            if "Vouchers" in endpoint or "Statement" in endpoint))

    def kill_leading_broker(self) -> int:
        """SIGKILL the node that leads the most partitions of the payments topic; returns its index."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.cluster.bootstrap_servers.split(","), client_id="chaos")
        try:
            topic = admin.describe_topics([self.payments_topic])[0]
        finally:
            admin.close()
        leaders = Counter(p["leader_id"] for p in topic["partitions"])
        node_id, led = leaders.most_common(1)[0]
        index = self.cluster.node_ids.index(node_id)
        self.cluster.kill_node(index)
        self.say(f"SIGKILL of Kafka node {node_id}, leader of {led} of {len(topic['partitions'])} payment partitions")
        return index

    def database_hard_stop(self) -> None:
        self.watch.database_down()
        self.pg.kill()
        self.note("PostgreSQL stopped (immediate)")

        def later() -> None:
            time.sleep(self.plan.db_down_s)
            self.pg.restart()
            self.watch.database_up()
            self.note("PostgreSQL accepts connections again")
        self.background("pg-restart", later)

    def background(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._background.append(thread)

    def phase_drain(self) -> float | None:
        self.enter("drain")
        self.inserter.stop()
        if self.inserter.error is not None:
            raise RuntimeError(f"the inserter failed: {self.inserter.error!r}")
        started = time.monotonic()
        deadline = started + self.plan.drain_timeout_s
        payments = self.inserter.inserted
        while time.monotonic() < deadline:
            self.tick()
            inserted, registered = self.watch.counts()
            if registered >= inserted and self.markers() == payments:
                drain = time.monotonic() - started
                self.say(f"drained in {drain:.0f} s")
                return drain
            time.sleep(0.5)
        self.say(f"not drained after {self.plan.drain_timeout_s:.0f} s")
        return None

    def tick(self) -> None:
        """Restarts, diagnostics of a long stall, and a progress line now and then."""
        self.fleet.tick()
        if self.inserter.error is not None:
            raise RuntimeError(f"the inserter failed: {self.inserter.error!r}")
        stall = self.watch.current if self.watch else 0.0
        if stall > DUMP_AFTER_S and not self._dumped:
            self._dumped = True
            self.dump_stacks(stall)
        elif stall < 1.0:
            self._dumped = False
        now = time.monotonic()
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_S
            inserted, registered = self.watch.counts()
            markers = self.markers()
            alive = ",".join(n for n, m in self.fleet.members.items() if m.alive())
            progress(f"{self.phase} {now - self.phase_started:.0f} s: {inserted} inserted, {registered} registered, "
                     f"{'?' if markers is None else markers} marked, {self.fleet.kills} kills, up: {alive or '-'}, "
                     f"stall now {stall:.1f} s, longest {self.watch.longest:.1f} s")

    def dump_stacks(self, stall: float) -> None:
        self.say(f"stalled {stall:.0f} s: every vb2po process prints its threads' stacks to its log (SIGUSR1)")
        self.fleet.signal_all(signal.SIGUSR1)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            return
        for name, member in self.fleet.members.items():
            if member.alive():
                out = self.workdir / f"py-spy-{name}-{time.strftime('%H%M%S')}.txt"
                with open(out, "w") as fh:
                    subprocess.run([spy, "dump", "--pid", str(member.proc.pid)], stdout=fh, stderr=subprocess.STDOUT,
                                   timeout=60, check=False)
                self.note(f"py-spy dump of {name} in {out.name}")

    def markers(self) -> int | None:
        try:
            if self._markers_conn is None:
                self._markers_conn = pyodbc.connect(self.conn_str, autocommit=True, timeout=2)
            return self._markers_conn.execute('SELECT COUNT(*) FROM "CustTr" WHERE "Gr4" = 1').fetchone()[0]
        except pyodbc.Error:
            if self._markers_conn is not None:
                try:
                    self._markers_conn.close()
                except pyodbc.Error:
                    pass
            self._markers_conn = None
            return None

    # -- the check -------------------------------------------------------------------------
    def judge(self, drain: float | None) -> Report:
        self.watch.stop()
        self.watch.sample()
        self.fleet.stop()
        report = Report(kills=self.fleet.kills, longest_stall=self.watch.longest, drain_s=drain)
        with VismaDatabase(self.conn_str) as db:
            rows = list(db.query('SELECT "JNo", "EntNo", "InvoNo", "Am", "VoDt", "VoTp" FROM "CustTr" WHERE "JNo" >= ?',
                                 [FIRST_JNO]))
            report.markers = list(db.query('SELECT COUNT(*) FROM "CustTr" WHERE "Gr4" = 1'))[0][0]
            paid: dict[int, Decimal] = defaultdict(Decimal)
            floor = self.lookback.year * 10_000 + self.lookback.month * 100 + self.lookback.day
            for invo_no, am, vo_dt in db.query('SELECT "InvoNo", "Am", "VoDt" FROM "CustTr" WHERE "VoTp" = 3 AND "Am" < 0'):
                if int(vo_dt) >= floor and str(invo_no or "").strip().isdigit():
                    paid[int(invo_no)] += -Decimal(am)
        references = {external_import_reference(COMPANY_NO, int(j), int(e)) for j, e, *_ in rows}
        report.payments = len(references)
        if report.payments != len(self.watch.inserted) or references != set(self.watch.inserted):
            report.problems.append(f"the database holds {report.payments} run payments, the inserter reported "
                                   f"{len(self.watch.inserted)}")
        vouchers = Counter(v.draft.external_import_reference for v in self.sandbox.state.ledgers[CLIENT_KEY].vouchers())
        lost = sorted(r for r in references if vouchers[r] == 0)
        doubled = sorted(r for r in references if vouchers[r] > 1)
        strangers = sorted(r for r in vouchers if r not in references)
        report.lost, report.duplicate = len(lost), len(doubled)
        if lost:
            report.problems.append(f"lost (no voucher): {', '.join(lost[:20])}")
        if doubled:
            report.problems.append("duplicates: " + ", ".join(f"{r} x{vouchers[r]}" for r in doubled[:20]))
        if strangers:
            report.problems.append(f"vouchers for no payment of the run: {', '.join(strangers[:20])}")
        if report.markers != report.payments:
            report.problems.append(f"{report.markers} markers for {report.payments} payments")
        expected = {i.invoice_no: i.balance_before_sync - paid[i.invoice_no] for i in invoices(self.spec)}
        actual = {i.invoice_no: i.balance for i in self.sandbox.state.ledgers[CLIENT_KEY].invoices()}
        wrong = [f"invoice {n}: PowerOffice {actual.get(n)} != Visma {b}" for n, b in expected.items() if actual.get(n) != b]
        if wrong:
            report.problems.append(f"{len(wrong)} invoice balances differ: " + "; ".join(wrong[:10]))
        if report.longest_stall > STALL_LIMIT_S:
            report.problems.append(f"longest stall {report.longest_stall:.1f} s ({self.watch.longest_where}) "
                                   f"> {STALL_LIMIT_S:.0f} s")
        if drain is None:
            report.problems.append(f"not drained within {self.plan.drain_timeout_s:.0f} s")
        for member in self.fleet.members.values():
            if member.exits:
                report.problems.append(f"{member.name} exited on its own {len(member.exits)} time(s): codes {member.exits}")
        self.say(f"longest stall {self.watch.longest:.1f} s ({self.watch.longest_where or 'none'}); "
                 f"{sum(m.starts for m in self.fleet.members.values())} process starts; "
                 f"balances checked on {len(expected)} invoices")
        return report

    def close(self) -> None:
        for step in (lambda: self.inserter and self.inserter.stop(), lambda: self.watch and self.watch.stop(),
                     lambda: self.fleet and self.fleet.stop(), lambda: self.sandbox and self.sandbox.stop(),
                     lambda: self.cluster and self.cluster.stop(timeout=20), lambda: self.pg and self.pg.stop()):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - stop everything else anyway
                progress(f"while stopping: {exc!r}")
        self.timeline.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    plan = Plan()
    parser.add_argument("--payments", type=int, default=plan.payments, help="payments inserted in phase 1 (at least)")
    parser.add_argument("--kills", type=int, default=plan.kills, help="SIGKILLs in phase 1 (at least)")
    parser.add_argument("--rate", type=float, default=plan.rate, help="payments/s inserted in phase 1")
    parser.add_argument("--fault-seconds", type=float, default=plan.fault_s, help="length of the fault phase")
    parser.add_argument("--db-down", type=float, default=plan.db_down_s, help="seconds PostgreSQL is down")
    parser.add_argument("--drain-timeout", type=float, default=plan.drain_timeout_s)
    parser.add_argument("--seed", type=int, default=plan.seed)
    parser.add_argument("--workdir", type=Path, help="logs, settings and the timeline (default: a new temporary folder)")
    args = parser.parse_args(argv)
    plan = Plan(payments=args.payments, kills=args.kills, rate=args.rate, fault_s=args.fault_seconds,
                db_down_s=args.db_down, drain_timeout_s=args.drain_timeout, seed=args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vb2po-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    progress(f"logs, settings and the timeline in {workdir}")
    chaos = Chaos(plan, workdir)
    try:
        report = chaos.run()
    except KeyboardInterrupt:
        progress("interrupted: stopping everything")
        chaos.close()
        return 130
    except Exception as exc:  # noqa: BLE001 - the run failed before its check: say so plainly
        progress(f"the run failed: {exc!r}")
        chaos.close()
        print(f"chaos: failed before the check ({type(exc).__name__}); see {workdir}", flush=True)
        return 1
    chaos.close()
    for problem in report.problems:
        print(f"  problem: {problem}", file=sys.stderr)
    progress(f"run time {time.monotonic() - started:.0f} s; logs in {workdir}")
    print(report.line, flush=True)
    return 0 if report.ok else 1

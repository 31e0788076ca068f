"""The cost of an idle payment poll on a 1,000,000-row `CustTr` in PostgreSQL.

Idle means there is nothing to publish: every payment is already marked by the consumer and
behind the producer's cursor. After a poll that published nothing, `PaymentPoller.poll_once()`
sends one statement that returns no row: the keys-only probe (`PaymentPoller._probe`, key and
change stamp of the unmarked payments from `overlap_s` behind the cursor up to a little ahead of
now, made once for a while). We time that call (ODBC round trip included) and show the plan
PostgreSQL picks for that statement, both as EXPLAIN ANALYZE with the parameters inlined and,
through auto_explain, as psqlODBC sent it. Also shown, for information: the same table with no
cursor at all (a first start where every payment is already marked), which must walk the
whole index. The indexes the project names:

- `documented`: `vb2po.visma.queries.payment_poll_index`, the index to create on SQL Server
  (seek on the change position, covering the payment rule's columns);
- `devstack`: the narrower one `devstack.visma_seed.create_tables` creates (no INCLUDE).
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

from bench.data import LOOKBACK, load_postgres, psql
from devstack.dataset import VOUCHER_TYPE_PAYMENT, DatasetSpec, custtr_rows
from devstack.postgres import PostgresServer
from devstack.stack import LocalClient, settings_dict, to_settings
from producer.cursor import poll_start, upper_bound
from producer.payments import AHEAD_S, PLAN_FOR_S, PaymentPoller
from producer.publisher import KafkaTransactionalPublisher
from producer.service import transactional_id
from producer.state import CompanyState
from vb2po.kafka.topics import ensure_topics
from vb2po.settings import Settings
from vb2po.visma.company import open_company
from vb2po.visma.dialect import DialectName, dialect_for
from vb2po.visma.queries import PaymentSelection, Position, payment_poll_index, pending_payments_page

DATABASE = "idle_1m"
INDEX_NAME = "vb2po_CustTr_change"


@dataclass(frozen=True)
class IdleResult:
    index: str  # "documented" or "devstack"
    scenario: str  # "cursor at newest change" / "no cursor, all marked"
    polls: int
    median_ms: float
    p95_ms: float
    max_ms: float
    plan: str


def _settings(bootstrap: str, conn_str: str, namespace: str) -> Settings:
    return to_settings(settings_dict(
        bootstrap_servers=bootstrap, api_url="http://127.0.0.1:9/unused", token_url="http://127.0.0.1:9/unused",
        application_key="unused", subscription_key="unused",
        clients=[LocalClient("bench", "bench-client", 1, conn_str)], lookback=LOOKBACK, namespace=namespace,
    ))


def seed_idle_company(server: PostgresServer, rows: int) -> str:
    """1M dataset rows by COPY; every payment marked, as once the consumer has caught up."""
    spec = DatasetSpec(size=rows, seed=11)
    conn_str, _ = load_postgres(server, DATABASE, custtr_rows(spec), label=f"PostgreSQL idle CustTr ({rows:,} rows, COPY)",
                             with_poll_index=False)
    psql(server, DATABASE, f'UPDATE "CustTr" SET "Gr4" = 1 WHERE "VoTp" = {VOUCHER_TYPE_PAYMENT}')
    psql(server, DATABASE, 'VACUUM ANALYZE "CustTr"')
    return conn_str


def _create_index(server: PostgresServer, settings: Settings, which: str) -> str:
    d = dialect_for(DialectName.POSTGRESQL)
    psql(server, DATABASE, f'DROP INDEX IF EXISTS "{INDEX_NAME}"')
    if which == "documented":
        sql = payment_poll_index(d, checked_selection(settings))
    else:  # what devstack.visma_seed.create_tables creates
        sql = d.create_index(INDEX_NAME, "CustTr", ["ChDt", "ChTmms", "JNo", "EntNo"])
    psql(server, DATABASE, sql)
    psql(server, DATABASE, 'VACUUM ANALYZE "CustTr"')  # visibility map: index-only scans possible
    return sql


def newest_position(server: PostgresServer) -> Position:
    out = psql(server, DATABASE, 'SELECT "ChDt", "ChTmms", "JNo", "EntNo" FROM "CustTr" '
                                 'ORDER BY "ChDt" DESC, "ChTmms" DESC, "JNo" DESC, "EntNo" DESC LIMIT 1')
    return Position(*(int(v) for v in out.strip().split("|")))


def _literal_sql(sql: str, params: list) -> str:
    """The page query with its (integer) parameters inlined, for EXPLAIN in psql."""
    parts = sql.split("?")
    if len(parts) != len(params) + 1 or not all(isinstance(p, int) for p in params):
        raise ValueError("expected only integer parameters")
    return "".join(part + (str(params[i]) if i < len(params) else "") for i, part in enumerate(parts))


def poll_statement(poller: PaymentPoller) -> tuple[str, list]:
    """The statement `poll_once` sends next, as it builds it: after a poll that published nothing
    (every timed poll here), the keys-only probe it made (or makes now, made the same way);
    otherwise the first full page from the re-scan window's start."""
    sel = poller.source.selection
    moment = poller.clock()
    local = moment.astimezone(poller.zone)
    cursor = poller.state.payments_cursor
    start = poll_start(cursor, local, poller.overlap_s, sel.time_column)
    d = poller.source.db.dialect
    if poller._quiet:  # (the poller's own state: what it decides on)
        plan = poller._probe_plan
        if plan is not None and plan.cursor is cursor and moment.timestamp() < plan.until:
            return plan.sql, list(plan.params)
        upper = upper_bound(local, AHEAD_S + PLAN_FOR_S, sel.time_column)
        return pending_payments_page(d, sel, start, upper, poller.page_size, keys_only=True)
    return pending_payments_page(d, sel, start, upper_bound(local, AHEAD_S, sel.time_column), poller.page_size)


def explain(server: PostgresServer, poller: PaymentPoller) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of exactly the statement `poll_once` would send now."""
    sql, params = poll_statement(poller)
    return psql(server, DATABASE, f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {_literal_sql(sql, params)}").strip()


def time_polls(poller: PaymentPoller, polls: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        poller.poll_once()
    times = []
    for _ in range(polls):
        started = time.perf_counter()
        outcome = poller.poll_once()
        times.append((time.perf_counter() - started) * 1000)
        if outcome.rows_read or outcome.published:
            raise AssertionError(f"an idle poll read {outcome.rows_read} rows: the benchmark's data is not idle")
    return times


# (index, scenario, share of --polls): the headline case first; a first start without a cursor
# (every row marked) moves the cursor up to the day before on its first poll (one state write),
# so its later polls seek from there; shown for information, with fewer polls.
CASES = (
    ("documented", "cursor at newest change", 1.0),
    ("documented", "no cursor, all marked", 0.2),
    ("devstack", "cursor at newest change", 1.0),
)


def run(server: PostgresServer, bootstrap: str, *, rows: int, polls: int, namespace: str) -> tuple[list[IdleResult], dict]:
    started = time.monotonic()
    conn_str = seed_idle_company(server, rows)
    seed_s = time.monotonic() - started
    settings = _settings(bootstrap, conn_str, namespace)
    newest = newest_position(server)
    results: list[IdleResult] = []
    indexes: dict[str, str] = {}
    odbc_plan = statement = ""
    ensure_topics(settings.kafka)  # the first poll without a cursor writes the moved cursor
    publisher = KafkaTransactionalPublisher(settings.kafka, transactional_id(1) + "-idle-bench")
    try:
        for which, scenario, share in CASES:
            if which not in indexes:
                indexes[which] = _create_index(server, settings, which)
            cursor = newest if scenario.startswith("cursor") else None
            source = open_company(settings, settings.company(1))
            poller = PaymentPoller(source, publisher, settings.kafka.topics, settings.zone,
                                   CompanyState(1, payments_cursor=cursor), page_size=settings.producer.page_size,
                                   overlap_s=settings.producer.overlap_s, sweep_grace_s=settings.producer.sweep_grace_s)
            n = max(5, round(polls * share))
            try:
                times = time_polls(poller, n)
                plan = explain(server, poller)
                if not odbc_plan:
                    statement = poll_statement(poller)[0]
                    odbc_plan = plan_through_odbc(server, poller)
            finally:
                source.db.close()
            q = statistics.quantiles(times, n=20, method="inclusive")
            result = IdleResult(which, scenario, n, statistics.median(times), q[18], max(times), plan)
            print(f"  idle poll, {which} index, {scenario}: median {result.median_ms:.2f} ms, "
                  f"p95 {result.p95_ms:.2f} ms over {n} polls", file=sys.stderr, flush=True)
            results.append(result)
    finally:
        publisher.close()
    tsql = payment_poll_index(dialect_for(DialectName.TSQL), checked_selection(settings))
    return results, {"seed_s": seed_s, "rows": rows, "newest": newest, "indexes": indexes, "tsql_index": tsql,
                     "odbc_plan": odbc_plan, "statement": statement}


def plan_through_odbc(server: PostgresServer, poller: PaymentPoller) -> str:
    """The plan of one real `poll_once()` statement as sent through psqlODBC with bound
    parameters, logged by PostgreSQL's auto_explain on the poller's own connection."""
    log_path = server.workdir / "server.log"
    offset = log_path.stat().st_size
    db = poller.source.db
    for statement in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0", "SET auto_explain.log_analyze = on"):
        db.execute(statement)
    poller.poll_once()
    db.execute("SET auto_explain.log_min_duration = -1")
    with log_path.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode(errors="replace")
    marker = 'FROM "CustTr" WHERE'
    blocks = [b for b in text.split("LOG:  duration:") if marker in b]
    if not blocks:
        return "(auto_explain logged no plan for the poll query)"
    lines = blocks[-1].splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith(("Limit", "Sort", "Index", "Bitmap"))), 0)
    kept = [line.removeprefix("\t") for line in lines[start:] if line.strip() and "LOG:" not in line]
    return "\n".join(line for line in kept if "SET auto_explain" not in line)


def checked_selection(settings: Settings) -> PaymentSelection:
    """The payment selection as the producer builds it (marker column checked against the live table)."""
    source = open_company(settings, settings.company(1))
    try:
        return source.selection
    finally:
        source.db.close()

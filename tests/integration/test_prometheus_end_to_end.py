"""The dashboard and the alert rules against a real Prometheus that scrapes a real producer and
consumer during an end-to-end sync.

A Prometheus from Debian's package (devstack/deps.sh installs it) scrapes both processes every
second, with the jobs named as the dashboard and rules expect (vb2po-producer, vb2po-consumer),
a `namespace` target label as the chart's ServiceMonitor gives, and the rule file loaded. The run
is not spotless on purpose, so that the failure panels have something to show: a second Visma
company whose database cannot be reached, a payment row without invoice number (the producer
dead-letters it), one with an invoice number PowerOffice cannot have (the consumer dead-letters
it), PowerOffice answering some voucher posts with 503, and a sandbox rate limit below the
client's (2/s until the consumer has been refused with 429, then 25/s against the client's 40/s).

Then every query of the dashboard (panel targets and variable queries, with the variables filled
in as Grafana does) and every alert expression must parse and return data. Alert expressions
that are comparisons stay empty while things go well; those are listed in QUIET_WHILE_HEALTHY
with the reason, and for them the expression without its comparison must return data (the
series exist). Finally both processes stop, and the "down" alerts' expressions must fire.
`promtool check metrics` must find nothing to complain about in either process's /metrics.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from devstack.dataset import DatasetSpec
from devstack.ports import free_port
from devstack.stack import write_settings
from devstack.visma_seed import insert_custtr
from tests.builders import payment_row
from tests.processes import start_vb2po, terminate
from tests.services import wait_for
from vb2po.visma.db import VismaDatabase

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "helm/vb2po/files/dashboard.json"
RULES = REPO / "helm/vb2po/files/alerts.rules.yaml"
NAMESPACE = "vb2po-e2e"  # the target label the chart's ServiceMonitor would add
# Grafana's $__rate_interval is at least four scrape intervals; over the few minutes of this run
# a window that spans all of it keeps rate() and histogram_quantile() on real increases.
RATE_INTERVAL = "5m"

# Alert rules whose expression is a comparison that stays false in this run, and why. For these
# the expression without the comparison must return data. (Any other rule must return data as it
# stands: VB2POPollNeverSucceeded from company 2, VB2POBadVismaRows and VB2PODeadLettersGrowing
# from the two bad rows.) A rule listed here may still fire (e.g. an old dataset's cursor lag).
QUIET_WHILE_HEALTHY = {
    "VB2POPollStale": "company 1 polls every 0.2 s; company 2 never succeeded, so it has no timestamp to be stale",
    "VB2POCursorLagHigh": "fires only when the newest published change is over 15 minutes old",
    "VB2POConsumerLagHigh": "the consumer keeps up: far fewer than 1000 records wait",
    "VB2POPowerOfficeErrors": "the injected 503s may stay under 5% of the calls to an endpoint",
    "VB2POPowerOfficeRateLimited": "the 429s may stay under 5% of all calls",
    "VB2POProducerDown": "the producer is up (the expression is checked again after it stopped)",
    "VB2POConsumerDown": "the consumer is up (the expression is checked again after it stopped)",
    "VB2POConsumersAllDown": "the consumer is up (the expression is checked again after it stopped)",
    "VB2POSettingsDiverged": "both processes run with the file's settings (version 0)",
}
DOWN_ALERTS = ("VB2POProducerDown", "VB2POConsumerDown", "VB2POConsumersAllDown")

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class Prometheus:
    """A Prometheus server of its own: generated config, storage in a tmp folder, 127.0.0.1 only."""

    def __init__(self, folder: Path, targets: dict[str, int], rule_files: list[Path]):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE}}]}
                for job, port in targets.items()
            ],
        }
        self.config_file = folder / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_file = folder / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        check = subprocess.run([PROMTOOL, "check", "config", str(self.config_file)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config_file}", f"--storage.tsdb.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._ready, timeout=60, interval=0.2, what="Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_file.read_text()
        try:
            return requests.get(self.url + "/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query; the result as a list of series (a scalar counts as one)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


class PromQLError(AssertionError):
    pass


@pytest.fixture
def prometheus(tmp_path) -> Iterator:
    started: list[Prometheus] = []

    def start(targets: dict[str, int]) -> Prometheus:
        folder = tmp_path / f"prometheus-{len(started)}"
        folder.mkdir()
        server = Prometheus(folder, targets, [RULES])
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
        assert server.proc is None or server.proc.poll() is not None  # no Prometheus left behind


# --- the dashboard's queries -------------------------------------------------------------------

def dashboard_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))  # rows keep their panels when collapsed


def dashboard_targets(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel target."""
    found = []
    for panel in dashboard_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"panel {panel.get('title')!r} target {target.get('refId')}", target["expr"]))
    return found


def variable_query(variable: dict) -> str:
    query = variable.get("query")
    return query.get("query", "") if isinstance(query, dict) else str(query or "")


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$", re.DOTALL)
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]
    return VARIABLE.sub(one, expr)


def regex_value(values: list[str]) -> str:
    """A multi-value variable inside =~, as Grafana's Prometheus data source formats it."""
    escaped = [re.sub(r"([\\.+*?^$()\[\]{}|])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def resolve_variables(prom: Prometheus, dashboard: dict) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The variables with the values their queries find (in dashboard order, each may use the ones
    before it), and with "All" selected; plus the problems found."""
    chosen = {"__rate_interval": RATE_INTERVAL, "__interval": "1s", "__range": RATE_INTERVAL}
    all_selected = dict(chosen)
    problems = []
    for variable in dashboard.get("templating", {}).get("list", []):
        name, kind = variable["name"], variable.get("type")
        if kind == "datasource":
            chosen[name] = all_selected[name] = "prometheus"
            continue
        if kind != "query":
            raise AssertionError(f"variable {name}: type {kind} is not covered by this test")
        query = variable_query(variable)
        match = LABEL_VALUES.match(query.strip())
        assert match, f"variable {name}: only label_values(selector, label) queries are covered, not {query!r}"
        selector, label = match["selector"], match["label"]
        try:
            series = prom.query(substitute(selector, chosen))
        except PromQLError as exc:
            problems.append(f"variable {name}: {query}: {exc}")
            continue
        values = sorted({s["metric"][label] for s in series if s["metric"].get(label)})
        if not values:
            problems.append(f"variable {name}: {query} finds no {label} values")
            continue
        chosen[name] = regex_value(values)
        all_selected[name] = variable.get("allValue") or regex_value(values)
    return chosen, all_selected, problems


def empty_or_failing(prom: Prometheus, queries: list[tuple[str, str]]) -> list[str]:
    problems = []
    for where, expr in queries:
        try:
            if not prom.query(expr):
                problems.append(f"{where}: no data: {expr}")
        except PromQLError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def dashboard_problems(prom: Prometheus, dashboard: dict) -> list[str]:
    chosen, all_selected, problems = resolve_variables(prom, dashboard)
    for values, how in ((chosen, "variables as found"), (all_selected, "variables at All")):
        queries = [(f"{where} ({how})", substitute(expr, values)) for where, expr in dashboard_targets(dashboard)]
        problems += empty_or_failing(prom, queries)
    return problems


# --- the alert rules --------------------------------------------------------------------------

def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[0-9.e+-]+\s*$")
OR_ABSENT = re.compile(r"\s+or\s+absent\(.*\)\s*$", re.DOTALL)


def without_comparison(expr: str) -> str:
    """`A > 900` -> `A`; `A == 0 or absent(B)` -> `A`: the series the alert looks at."""
    stripped = COMPARISON.sub("", OR_ABSENT.sub("", expr.strip()))
    assert stripped != expr.strip(), f"no comparison to take away in {expr!r}"
    return stripped


def alert_outcomes(prom: Prometheus) -> dict[str, str]:
    """Per alert: "fires" (its expression returns data), "quiet" (a listed comparison that is
    false, while the expression without it returns data), or the problem."""
    outcomes = {}
    for rule in alert_rules():
        name, expr = rule["alert"], rule["expr"]
        try:
            if prom.query(expr):
                outcomes[name] = "fires"
            elif name not in QUIET_WHILE_HEALTHY:
                outcomes[name] = f"problem: no data: {expr}"
            elif not prom.query(without_comparison(expr)):
                outcomes[name] = f"problem: no data even without its comparison: {without_comparison(expr)}"
            else:
                outcomes[name] = "quiet"
        except PromQLError as exc:
            outcomes[name] = f"problem: {exc}"
    return outcomes


def alert_problems(prom: Prometheus) -> list[str]:
    return [f"alert {name}: {outcome}" for name, outcome in alert_outcomes(prom).items() if outcome.startswith("problem")]


def rule_health_problems(prom: Prometheus) -> list[str]:
    """Every rule loaded and evaluated at least once without an error."""
    loaded = {r["name"]: r for g in prom.api("rules")["groups"] for r in g["rules"]}
    problems = [f"alert {r['alert']} not loaded" for r in alert_rules() if r["alert"] not in loaded]
    for name, rule in loaded.items():
        if rule.get("health") != "ok":
            problems.append(f"rule {name}: health {rule.get('health')}: {rule.get('lastError')}")
    return problems


# --- the processes ------------------------------------------------------------------------------

def scrape(port: int) -> str:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def promtool_check_metrics(text: str) -> str:
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return "" if result.returncode == 0 and not (result.stdout + result.stderr).strip() else \
        f"exit {result.returncode}: {result.stdout}{result.stderr}"


def settle(check, *, what: str, timeout: float = 30) -> None:
    """Poll `check()` (a list of problems) until it is empty; fail listing the last problems."""
    last: list[str] = []

    def clean() -> bool:
        last[:] = check()
        return not last
    try:
        wait_for(clean, timeout=timeout, interval=1, what=what)
    except AssertionError:
        raise AssertionError(f"{what}, after {timeout}s:\n  " + "\n  ".join(last)) from None


def json_lines(log_file: Path) -> list[dict]:
    lines = []
    for number, line in enumerate(log_file.read_text().splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{log_file.name} line {number} is no JSON object: {line!r}") from None
    return lines


@pytest.mark.slow
def test_every_dashboard_query_and_alert_expression_returns_data_from_a_real_run(make_world, prometheus, tmp_path):
    started = time.monotonic()
    producer_port, consumer_port = free_port(), free_port()
    world = make_world(
        DatasetSpec(size=300, seed=61), rate_limit=25,
        poweroffice={"requests_per_second": 40},  # above the sandbox's limit: calls may get 429
        consumer={"concurrency": 4}, metrics_bind_address="127.0.0.1",
    )
    broken = f"Driver=SQLite3;Database={tmp_path}/no-such-folder/F0002.db;Pwd=e2e-secret-not-to-log"
    world.settings_data["companies"].append({"company_no": 2, "odbc": broken, "currency": "NOK"})
    with VismaDatabase(world.connection_string) as db:
        insert_custtr(db, [payment_row(9000, 1, vo_dt=20261032),  # the producer dead-letters it: no real date
                           payment_row(9000, 2, invoice_no="X-17")])  # the consumer dead-letters it
    world.sandbox.control.set_faults(error_share=0.1, error_status=503, path_contains="Vouchers", seed=3)
    files = {}
    for role, port in (("producer", producer_port), ("consumer", consumer_port)):
        files[role] = write_settings(tmp_path / f"{role}.yaml", {**world.settings_data, "metrics_port": port})

    prom = prometheus({"vb2po-producer": producer_port, "vb2po-consumer": consumer_port})
    logs = {role: tmp_path / f"{role}.log" for role in files}
    world.sandbox.control.set_rate_limit(2)  # until the consumer has surely seen a 429 (below)
    procs = {role: start_vb2po(files[role], role, logs[role]) for role in files}
    try:
        def rate_limited() -> bool:
            assert procs["consumer"].poll() is None, logs["consumer"].read_text()[-5000:]
            try:
                return 'status="429"' in scrape(consumer_port)
            except requests.ConnectionError:
                return False
        wait_for(rate_limited, timeout=120, interval=0.2, what="the consumer to be refused with 429")
        world.sandbox.control.set_rate_limit(25)

        def all_applied() -> bool:
            for role, proc in procs.items():
                assert proc.poll() is None, f"the {role} ended:\n{logs[role].read_text()[-5000:]}"
            return world.markers() >= world.expected_payments
        wait_for(all_applied, timeout=240, interval=0.5, what=f"{world.expected_payments} payments applied")
        applied_at = time.monotonic()

        # Prometheus has scraped the end state, and both dead letters, a few times over.
        seen = {
            "up, both jobs, 5 scrapes each": 'min(count_over_time(up{job=~"vb2po-producer|vb2po-consumer"}[1m])) >= 5 '
                                             'and on() count(up{job=~"vb2po-producer|vb2po-consumer"} == 1) == 2',
            "every marker": f"sum(vb2po_consumer_markers_written_total) >= {world.expected_payments}",
            "the consumer's dead letter": 'vb2po_consumer_dead_letters_total{reason="invoice_unknown"} >= 1',
            "the producer's bad row": 'vb2po_producer_bad_rows_total{reason="invalid_date"} >= 1',
            "company 2 failing": 'vb2po_producer_errors_total{company="2", kind="db_unavailable"} >= 1',
            "consumer lag": "vb2po_consumer_lag_records",
            "blocked customers": "vb2po_credit_blocked_customers",
        }
        for what, expr in seen.items():
            wait_for(lambda expr=expr: prom.query(expr), timeout=60, interval=0.5, what=f"Prometheus to see {what}")

        # Company 2's database cannot be reached: neither process is ready, and both say why.
        for port in (producer_port, consumer_port):
            readyz = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            assert (readyz.status_code, readyz.json()["failed"]) == (503, ["visma_company_2"]), readyz.text

        # promtool on what both processes serve right now
        for role, port in (("producer", producer_port), ("consumer", consumer_port)):
            assert promtool_check_metrics(scrape(port)) == "", f"promtool check metrics on the {role}"

        dashboard = json.loads(DASHBOARD.read_text())
        assert dashboard_targets(dashboard), "the dashboard has no queries?"
        # Rates, quantiles and recording of the last scrapes may lag a second or two behind.
        settle(lambda: dashboard_problems(prom, dashboard), what="dashboard queries without data or not parsing")
        settle(lambda: alert_problems(prom), what="alert expressions without data or not parsing")
        settle(lambda: rule_health_problems(prom), what="rules Prometheus could not load or evaluate")
        checked_at = time.monotonic()
        outcomes = alert_outcomes(prom)
        print(f"\nprometheus e2e: {2 * len(dashboard_targets(dashboard))} dashboard queries and "
              f"{len(outcomes)} alert expressions return data; alerts firing in this run: "
              f"{sorted(n for n, o in outcomes.items() if o == 'fires')}")
    finally:
        for proc in procs.values():
            terminate(proc)

    # Both processes are gone: the "down" alerts' expressions return data as they stand.
    rules = {r["alert"]: r["expr"] for r in alert_rules()}
    for name in DOWN_ALERTS:
        wait_for(lambda name=name: prom.query(rules[name]), timeout=30, interval=0.5, what=f"{name}'s expression to fire")

    # The logs: one JSON object per line; the dead-lettered rows name their event, company, customer.
    producer_lines, consumer_lines = json_lines(logs["producer"]), json_lines(logs["consumer"])
    bad_row = [line for line in producer_lines if line["message"].startswith("bad row to dead letters")]
    assert bad_row and bad_row[0]["company"] == 1 and bad_row[0]["customer"] == 10000 and bad_row[0]["event_id"]
    letter = [line for line in consumer_lines
              if line["message"].startswith("dead-lettered") and line.get("reason") == "invoice_unknown"]
    assert letter and letter[0]["company"] == 1 and letter[0]["customer"] == 10000 and letter[0]["event_id"]
    retries = [line for line in consumer_lines if " retrying in " in line["message"]]
    assert retries and all({"event_id", "company", "customer"} <= set(line) for line in retries)
    everything_logged = logs["producer"].read_text() + logs["consumer"].read_text()
    for secret in ("e2e-secret-not-to-log", world.sandbox.application_key, world.sandbox.subscription_key):
        assert secret not in everything_logged
    print(f"prometheus e2e: sync {applied_at - started:.1f}s, checks {checked_at - applied_at:.1f}s, "
          f"total {time.monotonic() - started:.1f}s")

"""/healthz and /readyz: ready only while Kafka, every Visma database and PowerOffice answer;
when one does not, 503 names the failed check (and never quotes a connection string)."""
from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from typing import Iterator

import requests

from devstack.ports import free_port
from devstack.stack import write_settings
from devstack.visma_seed import create_tables, sqlite_connection_string
from tests.processes import start_vb2po, terminate
from tests.services import wait_for
from vb2po.http_server import BackgroundServer
from vb2po.ops import create_ops_app, serve_ops
from vb2po.readiness import consumer_checks, producer_checks
from vb2po.visma.db import VismaDatabase


@contextmanager
def ops(checks) -> Iterator[BackgroundServer]:
    server = serve_ops("127.0.0.1", 0, checks)
    try:
        yield server
    finally:
        server.stop()


def readyz(server: BackgroundServer) -> tuple[int, dict]:
    response = requests.get(server.url + "/readyz", timeout=10)
    return response.status_code, response.json()


def test_ready_when_kafka_visma_and_poweroffice_answer(make_settings, sqlite_company_db):
    settings = make_settings({1: sqlite_company_db})
    with ops(consumer_checks(settings)) as server:
        assert requests.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}
        status, body = readyz(server)
    assert status == 200, body
    assert body == {"ready": True, "checks": {"kafka": "ok", "visma_company_1": "ok", "poweroffice": "ok"}}


def test_a_company_database_that_cannot_be_reached_makes_it_not_ready_and_says_which(make_settings, sqlite_company_db,
                                                                                      tmp_path):
    broken = f"Driver=SQLite3;Database={tmp_path}/no-such-dir/F0002.db;Pwd=not-to-be-shown"
    settings = make_settings({1: sqlite_company_db, 2: broken})
    for checks in (producer_checks(settings), consumer_checks(settings)):
        with ops(checks) as server:
            status, body = readyz(server)
            healthz = requests.get(server.url + "/healthz", timeout=10).status_code
        assert status == 503 and healthz == 200  # not ready, but alive: no restart
        assert body["ready"] is False and body["failed"] == ["visma_company_2"]
        assert body["checks"]["visma_company_1"] == body["checks"]["kafka"] == "ok"
        assert body["checks"]["visma_company_2"].startswith("unavailable: ")
        assert "not-to-be-shown" not in str(body) and "no-such-dir" not in str(body)


def test_readiness_follows_the_database_going_away_and_coming_back(make_settings, tmp_path):
    folder = tmp_path / "company"
    folder.mkdir()
    conn_str = sqlite_connection_string(folder / "F0001.db")
    with VismaDatabase(conn_str) as db:
        create_tables(db)
    settings = make_settings({1: conn_str})
    with ops(producer_checks(settings)) as server:
        assert readyz(server)[0] == 200
        shutil.move(folder, tmp_path / "away")  # the file's folder is gone: SQLite cannot open it
        status, body = readyz(server)
        assert (status, body["failed"]) == (503, ["visma_company_1"])
        shutil.move(tmp_path / "away", folder)
        assert readyz(server)[0] == 200


def test_kafka_or_poweroffice_out_of_reach_makes_it_not_ready(make_settings, sqlite_company_db):
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    no_kafka = make_settings({1: sqlite_company_db}, kafka={"bootstrap_servers": closed})
    settings = make_settings({1: sqlite_company_db})
    no_poweroffice = settings.model_copy(update={"poweroffice": settings.poweroffice.model_copy(
        update={"token_url": f"http://{closed}/token", "api_url": f"http://{closed}"})})
    for checks, failed in ((consumer_checks(no_kafka), ["kafka"]), (consumer_checks(no_poweroffice), ["poweroffice"])):
        with ops(checks) as server:
            status, body = readyz(server)
        assert (status, body["failed"]) == (503, failed), body
    assert "poweroffice" not in producer_checks(no_poweroffice)  # the producer never calls PowerOffice


def test_a_check_that_hangs_is_reported_by_name_within_the_budget():
    def hangs() -> None:
        time.sleep(5)

    app = create_ops_app({"fine": lambda: None, "hangs": hangs}, budget_s=0.5)
    with BackgroundServer(app, name="ops-test") as server:
        started = time.monotonic()
        status, body = readyz(server)
        took = time.monotonic() - started
    assert (status, body["failed"]) == (503, ["hangs"])
    assert body["checks"] == {"fine": "ok", "hangs": "unavailable: no answer within 0.5s"}
    assert took < 3  # below the chart's probe timeout


def test_a_running_producer_serves_healthz_and_readyz(make_settings, sqlite_company_db, tmp_path):
    port = free_port()
    data = make_settings({1: sqlite_company_db}, as_dict=True, metrics_port=port, metrics_bind_address="127.0.0.1")
    settings_file = write_settings(tmp_path / "settings.yaml", data)
    proc = start_vb2po(settings_file, "producer", tmp_path / "producer.log")
    try:
        def answer():
            assert proc.poll() is None, (tmp_path / "producer.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except requests.ConnectionError:
                return None
        response = wait_for(answer, timeout=60, interval=0.2, what="the producer's /readyz")
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"kafka": "ok", "visma_company_1": "ok"}
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        log_lines = lambda: [json.loads(line) for line in (tmp_path / "producer.log").read_text().splitlines()]  # noqa: E731
        opened = wait_for(lambda: [line for line in log_lines() if line["message"].startswith("company 1: open")], timeout=60,
                          what="the producer to open company 1")
        assert opened[0]["company"] == 1 and opened[0]["level"] == "INFO"  # a JSON line, with the company
    finally:
        terminate(proc)
    assert proc.returncode == 0

"""A service started while what it needs is away: one line a person can act on per try (what is
unreachable, and `vb2po config check`), no traceback, no kafka-python ERROR lines, tries again
with backoff, and carries on by itself once the thing is there."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from devstack.ports import free_port
from devstack.stack import write_settings
from tests.processes import start_vb2po, terminate
from tests.services import wait_for


class Forwarder:
    """A TCP port that, once opened, forwards to `target`: a Kafka bootstrap server appearing."""

    def __init__(self, port: int, target: tuple[str, int]):
        self.port, self.target = port, target
        self.listener = socket.create_server(("127.0.0.1", port))
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def says(log: Path, start: str) -> list[dict]:
    return [line for line in lines(log) if line["message"].startswith(start)]


def assert_readable(log: Path) -> None:
    text = log.read_text()
    assert "Traceback" not in text and '"exception"' not in text, text[-3000:]
    assert not [line for line in lines(log) if line["logger"].startswith("kafka") and line["level"] in ("ERROR", "CRITICAL")], \
        "kafka-python logged above WARNING"
    assert all(line.startswith("{") for line in text.splitlines()), "a line that is not a JSON log line"


def test_a_producer_started_before_kafka_says_so_once_per_try_and_starts_when_kafka_appears(
        make_settings, sqlite_company_db, kafka_bootstrap, tmp_path):
    port = free_port()  # nothing listens here yet
    data = make_settings({1: sqlite_company_db}, as_dict=True)
    data["kafka"]["bootstrap_servers"] = f"127.0.0.1:{port}"
    log = tmp_path / "producer.log"
    proc = start_vb2po(write_settings(tmp_path / "settings.yaml", data), "producer", log)
    forwarder = None
    try:
        tries = wait_for(lambda: len(says(log, "kafka: no bootstrap server answers")) >= 2 and says(
            log, "kafka: no bootstrap server answers"), timeout=30, what="two tries, one line each")
        assert proc.poll() is None, "the producer gave up instead of trying again"
        for line in tries:
            assert f"127.0.0.1:{port}" in line["message"] and "run `vb2po config check`" in line["message"], line
            assert line["level"] == "ERROR" and line["logger"] == "vb2po.startup"
        assert_readable(log)

        host, _, broker_port = kafka_bootstrap.split(",")[0].rpartition(":")
        forwarder = Forwarder(port, (host, int(broker_port)))
        wait_for(lambda: says(log, "kafka answers now"), timeout=60, what="the producer to notice Kafka")
        wait_for(lambda: says(log, "company 1: open"), timeout=60, what="the producer to open company 1")
        assert proc.poll() is None
    finally:
        code = terminate(proc)
        if forwarder is not None:
            forwarder.close()
    assert code == 0
    assert_readable(log)


def test_a_consumer_names_an_unreachable_poweroffice_and_visma_company_and_keeps_trying(
        make_settings, sqlite_company_db, tmp_path):
    closed = free_port()
    broken = f"Driver=SQLite3;Database={tmp_path}/no-such-folder/F0002.db;Pwd=startup-secret-not-to-log"
    data = make_settings({1: sqlite_company_db, 2: broken}, as_dict=True,
                         poweroffice={"api_url": f"http://127.0.0.1:{closed}/v2", "token_url": f"http://127.0.0.1:{closed}/token"})
    log = tmp_path / "consumer.log"
    proc = start_vb2po(write_settings(tmp_path / "settings.yaml", data), "consumer", log)
    try:
        tries = wait_for(lambda: len(says(log, "poweroffice: cannot reach")) >= 2 and says(log, "poweroffice: cannot reach"),
                         timeout=30, what="two tries at PowerOffice")
        assert proc.poll() is None, "the consumer gave up instead of trying again"
        assert all(f"127.0.0.1:{closed}" in t["message"] and "vb2po config check" in t["message"] for t in tries)
        company = says(log, "visma company 2: cannot connect over ODBC")
        assert len(company) == 1 and company[0]["company"] == 2 and "vb2po config check" in company[0]["message"]
        assert not says(log, "visma company 1"), "company 1 answers and is not mentioned"
        assert not says(log, "kafka:"), "Kafka answers and is not mentioned"
    finally:
        code = terminate(proc)
    assert code == 0
    assert_readable(log)
    assert "startup-secret-not-to-log" not in log.read_text()

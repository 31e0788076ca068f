"""Readiness checks: can this process reach what it depends on right now?"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

from vb2po.ops import ReadinessCheck
from vb2po.settings import Settings
from vb2po.visma.db import VismaDatabase


def kafka_check(settings: Settings) -> ReadinessCheck:
    def check() -> None:
        errors = []
        for server in settings.kafka.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                return
            except OSError as exc:
                errors.append(f"{server}: {exc}")
        raise ConnectionError("no Kafka bootstrap server reachable: " + "; ".join(errors))
    return check


def visma_check(settings: Settings, company_no: int) -> ReadinessCheck:
    company = settings.company(company_no)

    def check() -> None:
        # Its own short-lived connection: pyodbc connections are not shared across threads.
        with VismaDatabase(company.odbc.get_secret_value(), company.dialect, login_timeout=3) as db:
            list(db.query("SELECT 1"))
    return check


def poweroffice_check(settings: Settings) -> ReadinessCheck:
    """A TCP connection to PowerOffice's token and API hosts (no call: it would count against
    the subscription's rate limit at every probe)."""
    po = settings.poweroffice
    endpoints = list(dict.fromkeys(_host_port(url) for url in (po.token_url, po.api_url)))

    def check() -> None:
        for host, port in endpoints:
            socket.create_connection((host, port), timeout=2).close()
    return check


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def producer_checks(settings: Settings) -> dict[str, ReadinessCheck]:
    checks = {"kafka": kafka_check(settings)}
    checks.update({f"visma_company_{c.company_no}": visma_check(settings, c.company_no) for c in settings.companies})
    return checks


def consumer_checks(settings: Settings) -> dict[str, ReadinessCheck]:
    return {**producer_checks(settings), "poweroffice": poweroffice_check(settings)}

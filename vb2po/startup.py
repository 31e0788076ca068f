"""Starting a service when what it needs may not be there yet: one line a person can act on per
try, then another try after a backoff; never a traceback for a failure that is expected.

Before the producer or the consumer starts, the Kafka bootstrap servers (and, for the consumer,
PowerOffice) must answer: until they do, each try logs one line naming what cannot be reached and
saying what to run, and waits longer before the next (1 s doubling to 30 s). A Visma company that
cannot be reached is named once; the service starts anyway (the other companies work, and the
producer keeps retrying that one). kafka-python is started only once a bootstrap server answers,
so its own connection errors do not fill the log meanwhile.

A service that stops on an expected failure (Kafka gone, a transient error while starting) is
started again the same way, with one line saying why.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Callable
from urllib.parse import urlsplit

from vb2po.retry import Backoff
from vb2po.settings import CompanySettings, Settings

log = logging.getLogger("vb2po.startup")

HINT = "run `vb2po config check` to test the settings"
BACKOFF = Backoff(base_s=1.0, cap_s=30.0)
PROBE_TIMEOUT_S = 3.0


def _expected_errors() -> tuple[type[BaseException], ...]:
    from kafka.errors import KafkaError

    from vb2po.errors import TransientError

    return (KafkaError, TransientError, ConnectionError, TimeoutError, socket.timeout)


def _first_answer(endpoints: list[tuple[str, int]], timeout_s: float) -> str | None:
    """None when one of `endpoints` accepts a TCP connection, else why none did."""
    errors = []
    for host, port in endpoints:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            return None
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    return ", ".join(errors)


def _kafka_endpoints(settings: Settings) -> list[tuple[str, int]]:
    endpoints = []
    for server in settings.kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        endpoints.append((host.strip("[]"), int(port) if port.isdigit() else 9092))
    return endpoints


def unreachable_kafka(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    why = _first_answer(_kafka_endpoints(settings), timeout_s)
    return None if why is None else f"kafka: no bootstrap server answers ({why})"


def unreachable_poweroffice(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """A TCP connection to the token and API hosts: no call, so no request counts against the rate limit."""
    po = settings.poweroffice
    for url in dict.fromkeys((po.token_url, po.api_url)):
        parts = urlsplit(url)
        why = _first_answer([(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))], timeout_s)
        if why is not None:
            return f"poweroffice: cannot reach {url} ({why})"
    return None


def unreachable_company(company: CompanySettings, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    import pyodbc

    try:
        pyodbc.connect(company.odbc.get_secret_value(), timeout=int(timeout_s), autocommit=True).close()
        return None
    except pyodbc.Error as exc:  # the driver's own words, never the connection string
        detail = str(exc.args[-1]) if exc.args else type(exc).__name__
        return f"visma company {company.company_no}: cannot connect over ODBC: {detail}"


def wait_until_reachable(settings: Settings, stopping: threading.Event, *, poweroffice: bool) -> bool:
    """Block until Kafka (and PowerOffice, when asked) answer; False if stopped meanwhile."""
    for company in settings.companies:
        why = unreachable_company(company)
        if why:
            log.error("%s; %s; the other companies go on, this one is tried again with backoff", why, HINT,
                      extra={"company": company.company_no})
    attempt = 0
    while not stopping.is_set():
        problems = [p for p in (unreachable_kafka(settings), unreachable_poweroffice(settings) if poweroffice else None) if p]
        if not problems:
            if attempt:
                log.info("%s now; starting", "kafka and poweroffice answer" if poweroffice else "kafka answers")
            return True
        attempt += 1
        delay = BACKOFF.delay(attempt)
        for problem in problems:
            log.error("%s; %s; trying again in %.0fs", problem, HINT, delay)
        if stopping.wait(delay):
            return False
    return False


def describe(exc: BaseException) -> str:
    text = str(exc)
    kind = type(exc).__name__
    return text if text.startswith(kind) else f"{kind}: {text}"


def keep_running(name: str, settings: Settings, stopping: threading.Event, run: Callable[[], None], *,
                 poweroffice: bool = False) -> int:
    """Wait for what `name` needs, then `run()` it until it returns (stopped); an expected failure
    is one line, and another start after a backoff."""
    expected = _expected_errors()
    attempt = 0
    while not stopping.is_set():
        if not wait_until_reachable(settings, stopping, poweroffice=poweroffice):
            break
        try:
            run()
            break
        except expected as exc:
            if stopping.is_set():
                break
            attempt += 1
            delay = BACKOFF.delay(attempt)
            log.error("%s stopped: %s; %s; starting again in %.0fs", name, describe(exc), HINT, delay)
            stopping.wait(delay)
    return 0

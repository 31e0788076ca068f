"""Running the producer and consumer in-process for integration tests, and waiting on outcomes."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from admin.api.server import serve_admin
from consumer import applied_log
from consumer.service import ConsumerService
from producer.service import ProducerService
from vb2po.settings import Settings

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float = 60, interval: float = 0.1, what: str = "condition") -> T:
    """Poll until `condition()` is truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


@contextmanager
def running(settings: Settings, *, producer: bool = True, consumer: bool = True) -> Iterator[dict]:
    services: dict = {}
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def guarded(target):
        def run():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)
        return run

    if producer:
        services["producer"] = ProducerService(settings).start()
        threads.append(threading.Thread(target=guarded(services["producer"].run), daemon=True))
        if settings.admin.enabled:  # composed as `vb2po producer` does
            services["admin"] = serve_admin(settings, services["producer"], services["producer"].live)
    applied = None
    if consumer:
        services["consumer"] = ConsumerService(settings)
        threads.append(threading.Thread(target=guarded(services["consumer"].run), daemon=True))
        applied = applied_log.KafkaAppliedLog(settings.kafka)  # as `vb2po consumer` does
        previous_applied = applied_log.install(applied)
    for t in threads:
        t.start()
    try:
        yield services
    finally:
        for s in services.values():
            s.stop()
        for t in threads:
            t.join(timeout=30)
        for name, s in services.items():
            if name != "admin":
                s.close()
        if applied is not None:
            applied_log.install(previous_applied)
            applied.close()
    if errors:
        raise errors[0]

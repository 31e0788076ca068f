"""The endpoints every vb2po process serves for its operators and for Kubernetes:
`/metrics` (Prometheus), `/healthz` (the process is alive) and `/readyz` (every dependency
it needs answers: Kafka, the Visma databases, PowerOffice).

`/readyz` runs its checks side by side within `READINESS_BUDGET_S`, below the chart's probe
timeout (3 s), so a dependency that hangs shows up by name instead of as a timed-out probe:
200 `{"ready": true, "checks": {...: "ok"}}`, or 503 with `"failed": [names]` and each
failed check's error kind (never its message: it may quote a connection string).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vb2po.http_server import BackgroundServer

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]  # raises when its dependency is not reachable
READINESS_BUDGET_S = 2.5


def run_checks(checks: dict[str, ReadinessCheck], executor: ThreadPoolExecutor,
               budget_s: float = READINESS_BUDGET_S) -> dict[str, str]:
    """Each check's outcome: "ok", or "unavailable: <error kind>" (also when it took too long)."""
    futures = {name: executor.submit(check) for name, check in checks.items()}
    wait(futures.values(), timeout=budget_s)
    results: dict[str, str] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()  # still queued: never starts; running: its own timeout ends it
            results[name] = f"unavailable: no answer within {budget_s:g}s"
            log.warning("readiness: %s did not answer within %ss", name, budget_s, extra={"check": name})
            continue
        exc = future.exception()
        if exc is None:
            results[name] = "ok"
        else:
            results[name] = f"unavailable: {type(exc).__name__}"
            log.warning("readiness: %s unavailable: %s", name, exc, extra={"check": name})
    return results


def create_ops_app(checks: dict[str, ReadinessCheck], *, budget_s: float = READINESS_BUDGET_S) -> FastAPI:
    app = FastAPI(title="vb2po ops", docs_url=None, redoc_url=None, openapi_url=None)
    # Shared and bounded: checks that hang (and probes that keep coming) cannot pile up threads.
    executor = ThreadPoolExecutor(max_workers=max(4, 2 * len(checks)), thread_name_prefix="readyz")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict:
        results = run_checks(checks, executor, budget_s)
        failed = [name for name, outcome in results.items() if outcome != "ok"]
        response.status_code = 503 if failed else 200
        return {"ready": not failed, "checks": results, **({"failed": failed} if failed else {})}

    return app


def serve_ops(host: str, port: int, checks: dict[str, ReadinessCheck]) -> BackgroundServer:
    return BackgroundServer(create_ops_app(checks), host, port, name="ops").start()

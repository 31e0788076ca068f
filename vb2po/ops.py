"""The endpoints every vb2po process serves for its operators and for Kubernetes:
`/metrics` (Prometheus), `/healthz` (the process is alive) and `/readyz` (every dependency
it needs answers: Kafka, the Visma databases, PowerOffice)."""
from __future__ import annotations

import logging
from typing import Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vb2po.http_server import BackgroundServer

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]  # raises when its dependency is not reachable


def create_ops_app(checks: dict[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI(title="vb2po ops", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict:
        results = {}
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, never raised
                results[name] = f"unavailable: {type(exc).__name__}"
                log.warning("readiness: %s unavailable: %s", name, exc)
        ready = all(v == "ok" for v in results.values())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "checks": results}

    return app


def serve_ops(host: str, port: int, checks: dict[str, ReadinessCheck]) -> BackgroundServer:
    return BackgroundServer(create_ops_app(checks), host, port, name="ops").start()

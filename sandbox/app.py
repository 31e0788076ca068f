"""The sandbox as an ASGI app: routes, gateway and one place that renders every error."""
from __future__ import annotations

import logging
from typing import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.auth import token_router
from sandbox.control import control_router
from sandbox.faults import ResponseLost
from sandbox.gateway import GatewayMiddleware
from sandbox.problems import PROBLEM_MEDIA_TYPE, VALIDATION_TITLE, Problem
from sandbox.routes import api_router
from sandbox.state import ClientSeed, SandboxConfig, SandboxState
from sandbox.wire import dumps

log = logging.getLogger(__name__)


def _problem_response(problem: Problem, request: Request) -> Response:
    return Response(dumps(problem.body(instance=request.url.path)), status_code=problem.status,
                    media_type=PROBLEM_MEDIA_TYPE, headers=problem.headers)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return _problem_response(exc, request)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 becomes ASP.NET's 400 ValidationProblemDetails, `errors` keyed by field."""
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path", "header")]
        errors.setdefault(".".join(loc) or "$", []).append(str(err.get("msg")))
    detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return _problem_response(Problem(detail, status=400, title=VALIDATION_TITLE, errors=errors), request)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not Found", 405: "Method Not Allowed"}
    problem = Problem(str(exc.detail), status=exc.status_code, title=titles.get(exc.status_code, "Error"),
                      headers=dict(exc.headers or {}))
    return _problem_response(problem, request)


async def _on_crash(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ResponseLost):  # an injected drop: the answer is meant to be lost
        log.error("sandbox handler failed", exc_info=exc)
    return _problem_response(Problem(f"{type(exc).__name__}: {exc}", status=500, title="Internal Server Error"),
                             request)


class _HideInjectedDrops(logging.Filter):
    """uvicorn logs a cut-short response as an application error; for injected drops it is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseLost))


def _quiet_injected_drops() -> None:
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideInjectedDrops) for f in server_log.filters):
        server_log.addFilter(_HideInjectedDrops())


def create_app(state: SandboxState | None = None, *, clients: Sequence[ClientSeed] = (),
               config: SandboxConfig | None = None) -> FastAPI:
    """The sandbox app over `state`, or over a fresh state seeded with `clients`."""
    if state is None:
        state = SandboxState.seeded(config or SandboxConfig(), clients or [ClientSeed("client-demo")])
    app = FastAPI(title="PowerOffice Go v2 sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.include_router(token_router(state.tokens))
    app.include_router(api_router(state))
    app.include_router(control_router(state))
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_crash)
    app.add_middleware(GatewayMiddleware, state=state)
    _quiet_injected_drops()
    return app

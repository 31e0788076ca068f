"""The API gateway in front of /v2, as PowerOffice's (Azure API Management) behaves.

For every /v2 request, in order: subscription key (missing or wrong -> 401, APIM's
answer for both), rate limit per subscription key (-> 429 + Retry-After), then the
switched-on faults. The token route passes through uncounted by the limiter; control
routes (/_sandbox) bypass everything. Every non-control request is counted.
A pure ASGI middleware: it must be able to answer late or cut a response short.
"""
from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.faults import FaultPlan, ResponseLost
from sandbox.problems import PROBLEM_MEDIA_TYPE, Problem
from sandbox.ratelimit import retry_after_header
from sandbox.state import SandboxState
from sandbox.stats import LOST
from sandbox.wire import dumps

CONTROL_PREFIX = "/_sandbox"
API_PREFIX = "/v2"
SUBSCRIPTION_HEADER = "ocp-apim-subscription-key"

# ASP.NET binds query keys case-insensitively; FastAPI does not. Canonicalise the known ones.
_QUERY_KEYS = {k.lower(): k for k in (
    "customerNos", "externalNos", "invoiceNos", "accountNos", "onlyUnpaidInvoices", "date",
    "createdDateTimeOffsetGreaterThan", "PageNumber", "PageSize",
)}


def canonical_query(raw: bytes) -> bytes:
    if not raw:
        return raw
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(_QUERY_KEYS.get(k.lower(), k), v) for k, v in pairs]).encode("latin-1")


def _apim_problem(status: int, message: str, **headers: str) -> Problem:
    """APIM's own answers carry `statusCode` + `message` (RateLimitResponseDto); ProblemDetails too."""
    titles = {401: "Unauthorized", 429: "Too Many Requests"}
    return Problem(message, status=status, title=titles.get(status, "Error"), headers=headers,
                   statusCode=status, message=message)


async def send_problem(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    body = dumps(problem.body(instance=scope.get("path")))
    response = Response(body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=problem.headers)
    await response(scope, receive, send)


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        outcome: dict[str, Any] = {"status": 0, "lost": False}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
            await send(message)

        self.state.stats.opened()
        try:
            if scope["path"].startswith(API_PREFIX):
                scope["query_string"] = canonical_query(scope.get("query_string", b""))
                await self._api(scope, receive, recording_send, outcome)
            else:
                await self.app(scope, receive, recording_send)
        finally:
            self.state.stats.closed()
            self.state.stats.record(scope["method"], scope["path"], LOST if outcome["lost"] else outcome["status"])

    async def _api(self, scope: Scope, receive: Receive, send: Send, outcome: dict[str, Any]) -> None:
        key = Headers(scope=scope).get(SUBSCRIPTION_HEADER)
        if key is None:
            await send_problem(_apim_problem(401, "Access denied due to missing subscription key. Make sure to "
                                                  "include subscription key when making requests to an API."),
                               scope, receive, send)
            return
        if not secrets.compare_digest(key.encode(), self.state.config.subscription_key.encode()):
            await send_problem(_apim_problem(401, "Access denied due to invalid subscription key. Make sure to "
                                                  "provide a valid key for an active subscription."),
                               scope, receive, send)
            return
        wait_s = self.state.limiter.check(key)
        if wait_s is not None:
            retry_after = retry_after_header(wait_s)
            await send_problem(_apim_problem(429, f"Rate limit is exceeded. Try again in {retry_after} seconds.",
                                             **{"Retry-After": retry_after}), scope, receive, send)
            return
        plan = self.state.faults.plan(scope["method"], scope["path"])
        if plan.latency_s:
            await asyncio.sleep(plan.latency_s)
        if plan.error_status is not None:
            await send_problem(Problem("Injected fault: the service is unavailable.", status=plan.error_status,
                                       title="Service Unavailable"), scope, receive, send)
            return
        if plan.hold_then_timeout_s is not None:
            await asyncio.sleep(plan.hold_then_timeout_s)
            await send_problem(Problem("Injected fault: the backend did not answer in time.", status=504,
                                       title="Gateway Timeout"), scope, receive, send)
            return
        if plan.lose_response is not None:
            send = _losing_send(send, plan, outcome)
        await self.app(scope, receive, send)


def _losing_send(send: Send, plan: FaultPlan, outcome: dict[str, Any]) -> Send:
    """Let the handler commit, then lose its successful answer (errors go out untouched)."""
    async def losing_send(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            outcome["lost"] = True
            if plan.lose_response == "drop":
                await send(message)  # headers promise a body that never comes
                raise ResponseLost("injected fault: the connection is closed before the body")
            await asyncio.sleep(plan.lost_hold_s)  # "hold": the client has long given up
        await send(message)

    return losing_send

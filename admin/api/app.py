"""The admin HTTP API (FastAPI). Every request is authenticated with a personal token, checked
against the permission its action needs, and written to the audit log with its outcome.

Every JSON answer passes the redactor, so no secret from the settings can leave in a response;
the one exception is `POST /v1/tokens`, whose answer carries the new token, once.

| route | permission |
| --- | --- |
| `GET /v1/me` | any valid token |
| `GET /v1/config`, `POST /v1/config/check` | integration |
| `PATCH /v1/config` `{"set": {PATH: VALUE}, "reset": [PATH], "dry_run": false}` | integration |
| `POST /v1/fetch` `{"client": NAME}` / `{"all": true}`, `GET /v1/fetch/{id}` | fetch.client / fetch.all |
| `GET /v1/status` | integration |
| `GET /v1/dead-letters`, `GET /v1/dead-letters/{id}`, `POST /v1/dead-letters/redrive` | integration |
| `POST /v1/replay` | integration |
| `POST /v1/reconcile`, `GET /v1/reconcile/{id}` | integration |
| `GET /v1/tokens`, `POST /v1/tokens`, `GET /v1/audit` | integration |
| `DELETE /v1/tokens/{id}` | integration, or the token's own user |
| `GET /v1/overview` | any of the three (the invoice clients the user may see) |

The permission a route needs is checked before anything is looked up, so a refusal never
tells whether an id exists. Failed authentications are limited per client address and
audited once per burst (`admin.api.throttle`); every other request is audited one by one.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from kafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from admin.actions import dead_letters as letters
from admin.actions.applied import AppliedView, MemoryApplied
from admin.actions.config_check import failed, run_checks
from admin.actions.errors import Conflict, Invalid, NotFound, OperatorError
from admin.actions.fetch import FetchJob, start_fetch
from admin.actions.jobs import JobRegistry
from admin.actions.producer_view import ProducerView
from admin.actions.reconcile import ReconcileJob, start_reconcile
from admin.actions.redact import Redactor, settings_for_display
from admin.actions.replay import TOPICS, ReplaySpec, replay
from admin.actions.settings_change import Verify, change_settings, verify_against_systems
from admin.actions.settings_change import describe as describe_changes
from admin.actions.status import gather_status
from admin.api.access import FETCH_ALL, FETCH_CLIENT, INTEGRATION, Denied, Principal, authenticate
from admin.api.audit import AuditEntry, AuditLog, read_audit
from admin.api.throttle import FailedAuthLimiter
from admin.api.token_store import TokenStore
from admin.api.tokens import TokenRefused, issue, token_id_of, valid_token_id
from admin.console.sessions import SessionStore
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError
from vb2po.live_settings import LiveSettings
from vb2po.settings import Settings

log = logging.getLogger(__name__)

UNAUDITED_PREFIXES = ("/console/static/",)  # the console's stylesheet and script
OUTCOMES = {401: "unauthenticated", 403: "denied", 404: "not_found", 409: "conflict", 400: "invalid", 422: "invalid",
            429: "throttled"}


@dataclass
class AdminContext:
    file_settings: Settings
    tokens: TokenStore
    audit: AuditLog
    producer: ProducerView
    redactor: Redactor
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    live: LiveSettings | None = None  # the operators' setting changes; None: the settings are the file's only
    verify_change: Verify = verify_against_systems  # a change is checked against Visma and PowerOffice first
    fetches: JobRegistry[FetchJob] = field(default_factory=lambda: JobRegistry("fetch"))
    reconciles: JobRegistry[ReconcileJob] = field(default_factory=lambda: JobRegistry("reconcile"))
    auth_limiter: FailedAuthLimiter = field(default_factory=FailedAuthLimiter)
    applied: AppliedView = field(default_factory=MemoryApplied)  # payments registered, for the overview
    sessions: SessionStore = field(default_factory=SessionStore)  # the console's sign-ins

    def audit_finished_bursts(self, *, everything: bool = False) -> None:
        """One audit record per burst of failed authentications that is over."""
        for burst in self.auth_limiter.finished_bursts(everything=everything):
            self.audit.write(burst.entry())

    @property
    def settings(self) -> Settings:
        """What the producer runs with: the file's settings plus the operators' changes."""
        return self.live.settings if self.live is not None else self.file_settings


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FetchBody(_Body):
    client: str | None = None
    all: bool = False


class RedriveBody(_Body):
    ids: list[str] = []
    all: bool = False
    reason: str | None = None
    company_no: int | None = None
    dry_run: bool = False


class ReplayBody(_Body):
    to_offset: int | None = None
    to_time: datetime | None = None
    to_beginning: bool = False
    topics: list[str] = list(TOPICS)
    partitions: list[int] | None = None
    through_group: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    dry_run: bool = True
    allow_skip: bool = False
    list_limit: int = Field(50, ge=0, le=10_000)


class ConfigChangeBody(_Body):
    set: dict[str, Any] = {}
    reset: list[str] = []
    dry_run: bool = False
    expected_version: int | None = None


class ReconcileBody(_Body):
    client: str | None = None


class TokenBody(_Body):
    user: str
    ttl_days: int | None = Field(None, gt=0, le=3650)
    description: str = Field("", max_length=200)


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return OUTCOMES.get(status, "error" if status >= 500 else "invalid")


def create_admin_app(ctx: AdminContext) -> FastAPI:
    redactor = ctx.redactor

    class RedactedJSON(JSONResponse):
        def render(self, content: Any) -> bytes:
            return json.dumps(redactor.data(content), ensure_ascii=False, default=str).encode("utf-8")

    app = FastAPI(title="vb2po admin", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=RedactedJSON)

    # -- audit: one entry per request, whatever happened -------------------------------------
    @app.middleware("http")
    async def audited(request: Request, call_next) -> Response:
        request.state.audit = {"action": None, "target": None, "actor": None, "token_id": None, "detail": "",
                               "skip": False}
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - answered as 500, and audited
            log.exception("admin API: %s %s failed", request.method, request.url.path)
            request.state.audit["detail"] = "internal error"
            response = RedactedJSON({"error": "internal error; see the producer's log"}, status_code=500)
        a = request.state.audit
        outcome = _outcome(response.status_code)
        route_path = getattr(request.scope.get("route"), "path", None)  # set by routing, also when validation failed
        fallback = f"{request.method} {route_path}" if route_path else "unknown_route"
        entry = AuditEntry(
            action=a["action"] or fallback, outcome=outcome, actor=a["actor"], token_id=a["token_id"],
            target=redactor.data(a["target"]), status=response.status_code, detail=redactor.text(str(a["detail"]))[:500],
            method=request.method, path=request.url.path, remote=client_address(request),
        )
        if not a["skip"] and not request.url.path.startswith(UNAUDITED_PREFIXES):
            # (failed authentications are audited per burst, by the limiter)
            await run_in_threadpool(ctx.audit.write, entry)
        await run_in_threadpool(ctx.audit_finished_bursts)
        metrics.ADMIN_REQUESTS.labels(entry.action, outcome).inc()
        return response

    def _error(status: int, message: str, hint: str = "", **extra: Any) -> RedactedJSON:
        return RedactedJSON({"error": message, "hint": hint, **extra}, status_code=status)

    @app.exception_handler(OperatorError)
    async def operator_error(request: Request, exc: OperatorError) -> Response:
        request.state.audit["detail"] = str(exc)
        return _error(exc.status, str(exc), exc.hint)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail)}
        request.state.audit["detail"] = detail.get("error", "")
        return RedactedJSON({"hint": "", **detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        request.state.audit["detail"] = "; ".join(problems)
        return _error(400, "invalid request: " + "; ".join(problems))

    @app.exception_handler(TransientError)
    async def unavailable(request: Request, exc: TransientError) -> Response:
        request.state.audit["detail"] = str(exc)
        return _error(503, f"{exc.reason}: {exc}", "a dependency did not answer; try again shortly")

    @app.exception_handler(TerminalError)
    async def terminal(request: Request, exc: TerminalError) -> Response:
        request.state.audit["detail"] = str(exc)
        return _error(500, f"{exc.reason}: {exc}")

    # -- who is asking -----------------------------------------------------------------------
    def principal(request: Request) -> Principal:
        throttle(request)
        header = request.headers.get("authorization")
        if header is None:
            token = None
        elif header[:7].lower() == "bearer ":
            token = header[7:].strip()
        else:
            token = "not-a-bearer-token"
        token_id = token_id_of(token)
        request.state.audit["token_id"] = token_id
        try:
            record = ctx.tokens.get(token_id) if token_id else None
            who = authenticate(ctx.settings.admin, token, record, ctx.clock())
        except TokenRefused as exc:
            refused(request, exc, record)
            raise HTTPException(401, {"error": str(exc), "kind": exc.kind},
                                headers={"WWW-Authenticate": 'Bearer realm="vb2po"'}) from None
        except (TimeoutError, OSError, RuntimeError, KafkaError) as exc:
            raise HTTPException(503, {"error": f"the token store cannot be read right now ({type(exc).__name__})"}) from None
        request.state.audit["actor"] = who.user
        return who

    def throttle(request: Request) -> None:
        """429 before any token is looked at, while this address has failed too often."""
        wait = ctx.auth_limiter.retry_after(client_address(request), request.url.path)
        if wait is not None:
            request.state.audit["skip"] = True  # counted into the address's burst
            seconds = math.ceil(wait)
            raise HTTPException(429, {"error": f"too many failed sign-ins or bad tokens from your address; "
                                               f"try again in {seconds} s", "retry_after_s": seconds},
                                headers={"Retry-After": str(seconds)})

    def refused(request: Request, exc: TokenRefused, record) -> None:
        """A failed authentication: counted per address, audited with its burst."""
        user = record.user if exc.kind in ("expired", "revoked", "unknown_user") and record is not None else None
        request.state.audit.update(detail=exc.kind, actor=user, skip=True)
        ctx.auth_limiter.failed(client_address(request), exc.kind, user=user, path=request.url.path)

    def require(who: Principal, request: Request, permission: str) -> None:
        denied(request, lambda: who.require(permission))

    def denied(request: Request, check: Callable[[], None]) -> None:
        try:
            check()
        except Denied as exc:
            request.state.audit["detail"] = f"lacks {exc.permission}"
            raise HTTPException(403, {"error": str(exc), "permission": exc.permission}) from None

    def action(request: Request, name: str, target: Any = None) -> None:
        request.state.audit["action"] = name
        request.state.audit["target"] = target

    def integration(request: Request, who: Principal = Depends(principal)) -> Principal:
        require(who, request, INTEGRATION)
        return who

    def named(name: str) -> Callable[[Request], None]:
        def set_action(request: Request) -> None:
            request.state.audit["action"] = name
        return set_action

    # -- routes ------------------------------------------------------------------------------
    @app.get("/v1/me", dependencies=[Depends(named("me"))])
    def me(who: Principal = Depends(principal)) -> dict:
        return who.as_dict()

    @app.get("/v1/config", dependencies=[Depends(named("config.show"))])
    def show_config(who: Principal = Depends(integration)) -> dict:
        shown = settings_for_display(ctx.settings)
        if ctx.live is not None:
            shown["changes"] = describe_changes(ctx.live)
        return shown

    @app.patch("/v1/config", dependencies=[Depends(named("config.change"))])
    def change_config(body: ConfigChangeBody, request: Request, who: Principal = Depends(integration)) -> dict:
        action(request, "config.change.dry_run" if body.dry_run else "config.change", {"set": body.set, "reset": body.reset})
        if ctx.live is None:
            raise Conflict("this process does not follow setting changes", "change the settings file instead")
        answer = change_settings(ctx.live, set_values=body.set, reset=body.reset, actor=who.user, now=ctx.clock(),
                                 dry_run=body.dry_run, expected_version=body.expected_version,
                                 verify=ctx.verify_change)
        request.state.audit["detail"] = (f"version {answer['version']}: " + ", ".join(
            f"{c['path']} {c['before']!r} -> {c['after']!r}" for c in answer["changes"]) or "no change")
        return answer

    @app.post("/v1/config/check", dependencies=[Depends(named("config.check"))])
    def check_config(who: Principal = Depends(integration)) -> dict:
        findings = run_checks(ctx.settings)
        return {"ok": not failed(findings), "findings": [f.as_dict() for f in findings]}

    @app.post("/v1/fetch")
    def fetch(body: FetchBody, request: Request, who: Principal = Depends(principal)) -> dict:
        if body.all == (body.client is not None):
            action(request, "fetch", None)
            raise Invalid("name one invoice client, or ask for all", 'e.g. {"client": "hovedkontor"} or {"all": true}')
        permission = FETCH_ALL if body.all else FETCH_CLIENT
        action(request, permission, body.client or "all")
        denied(request, lambda: who.require_fetch(body.client))  # on the name alone: before the client is looked up
        job = start_fetch(ctx.settings, ctx.producer, body.client, who.user)
        ctx.fetches.add(job.fetch_id, job)
        request.state.audit["detail"] = f"{job.published} published, {job.as_dict()['bad_rows']} bad rows"
        return job.as_dict()

    @app.get("/v1/fetch/{fetch_id}")
    def fetch_progress(fetch_id: str, request: Request, who: Principal = Depends(principal)) -> dict:
        action(request, "fetch.progress", fetch_id)
        return followed_fetch(ctx, who, request, fetch_id).as_dict()

    @app.get("/v1/status", dependencies=[Depends(named("status"))])
    def status(who: Principal = Depends(integration)) -> dict:
        return gather_status(ctx.settings, ctx.producer)

    @app.get("/v1/dead-letters", dependencies=[Depends(named("dead_letters.list"))])
    def list_dead_letters(reason: str | None = None, company_no: int | None = None, stage: str | None = None,
                          open: bool = False, who: Principal = Depends(integration)) -> list:  # noqa: A002
        found = letters.list_letters(ctx.settings.kafka, reason=reason, company_no=company_no, stage=stage,
                                     only_open=open)
        return [e.summary() for e in found]

    @app.get("/v1/dead-letters/{letter_id}")
    def show_dead_letter(letter_id: str, request: Request, who: Principal = Depends(integration)) -> dict:
        action(request, "dead_letters.show", letter_id)
        return letters.get_letter(ctx.settings.kafka, letter_id).full()

    @app.post("/v1/dead-letters/redrive")
    def redrive(body: RedriveBody, request: Request, who: Principal = Depends(integration)) -> dict:
        action(request, "dead_letters.redrive", body.ids or {"all": body.all, "reason": body.reason,
                                                             "company_no": body.company_no})
        chosen = letters.select_letters(ctx.settings.kafka, body.ids, all_open=body.all, reason=body.reason,
                                        company_no=body.company_no)
        results = letters.redrive(ctx.settings.kafka, chosen, dry_run=body.dry_run)
        entry = letters.redriven_entry(who.user, who.token_id, results)
        if entry is not None:
            ctx.audit.write(entry)
        counts = {k: sum(1 for r in results if r["outcome"] == k) for k in ("redriven", "would_redrive", "skipped")}
        request.state.audit["detail"] = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        return {"dry_run": body.dry_run, **counts, "results": results}

    @app.post("/v1/replay")
    def do_replay(body: ReplayBody, request: Request, who: Principal = Depends(integration)) -> dict:
        action(request, "replay.dry_run" if body.dry_run else "replay",
               {k: v for k, v in body.model_dump(mode="json").items() if v not in (None, False, [])})
        spec = ReplaySpec(to_offset=body.to_offset, to_time=body.to_time, to_beginning=body.to_beginning,
                          topics=tuple(body.topics), partitions=tuple(body.partitions) if body.partitions else None,
                          through_group=body.through_group, dry_run=body.dry_run, allow_skip=body.allow_skip,
                          list_limit=body.list_limit)
        result = replay(ctx.settings, spec)
        request.state.audit["detail"] = f"group {result['group']}: {result['again']} again, {result['skipped']} skipped"
        return result

    @app.post("/v1/reconcile", status_code=202)
    def reconcile(body: ReconcileBody, request: Request, who: Principal = Depends(integration)) -> dict:
        action(request, "reconcile", body.client or "all")
        job = start_reconcile(ctx.settings, body.client, who.user)
        ctx.reconciles.add(job.reconcile_id, job)
        return job.as_dict()

    @app.get("/v1/reconcile/{reconcile_id}")
    def reconcile_progress(reconcile_id: str, request: Request, who: Principal = Depends(integration)) -> dict:
        action(request, "reconcile.progress", reconcile_id)
        return ctx.reconciles.get(reconcile_id).as_dict()

    @app.get("/v1/tokens", dependencies=[Depends(named("token.list"))])
    def list_tokens(who: Principal = Depends(integration)) -> list:
        now = ctx.clock()
        return [r.public(now) for r in ctx.tokens.all()]

    @app.post("/v1/tokens", status_code=201)
    def create_token(body: TokenBody, request: Request, who: Principal = Depends(integration)) -> Response:
        action(request, "token.create", body.user)
        if ctx.settings.admin.user(body.user) is None:
            raise Invalid(f"no user {body.user!r} under admin.users", "declare the user (and their groups) in the settings first")
        days = body.ttl_days or ctx.settings.admin.token_ttl_days
        issued = issue(body.user, created_by=who.user, now=ctx.clock(), ttl=timedelta(days=days),
                       description=body.description)
        ctx.tokens.put(issued.record)
        request.state.audit["detail"] = f"token {issued.record.token_id} for {body.user}, {days} days"
        # Not redacted: this answer is the one place the token is ever shown.
        return JSONResponse({"token": issued.token, **issued.record.public(ctx.clock())}, status_code=201)

    @app.delete("/v1/tokens/{token_id}")
    def revoke_token(token_id: str, request: Request, who: Principal = Depends(principal)) -> dict:
        action(request, "token.revoke", token_id)
        record = ctx.tokens.get(token_id) if valid_token_id(token_id) else None
        if INTEGRATION not in who.permissions and (record is None or record.user != who.user):
            # the same answer whether the id exists or not: only the user's own tokens are theirs to look at
            request.state.audit["detail"] = f"lacks {INTEGRATION}"
            raise HTTPException(403, {"error": f"user {who.user!r} may revoke only their own tokens; revoking another "
                                               f"user's token needs the permission {INTEGRATION!r}",
                                      "permission": INTEGRATION})
        if record is None:
            raise NotFound(f"no token {token_id!r}", "`vb2po token list` shows the token ids")
        revoked = record.revoke(who.user, ctx.clock())
        ctx.tokens.put(revoked)
        return revoked.public(ctx.clock())

    @app.get("/v1/audit", dependencies=[Depends(named("audit.list"))])
    def audit_log(limit: int = 100, actor: str | None = None, who: Principal = Depends(integration)) -> list:
        entries = [e for e in read_audit(ctx.settings.kafka) if actor is None or e.actor == actor]
        return [vars(e) for e in entries[-max(1, min(limit, 10_000)):]]

    @app.get("/v1/overview", dependencies=[Depends(named("overview"))])
    def overview(request: Request, who: Principal = Depends(principal)) -> dict:
        denied(request, lambda: require_any(who))
        return gather_overview(ctx, who)

    from admin.console.routes import install_console  # the console: same process, permissions and audit

    install_console(app, ctx, throttle=throttle, refused=refused)
    return app


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def require_any(who: Principal) -> None:
    """At least one of the three permissions (the overview, the console's pages)."""
    if not who.any_permission:
        raise Denied(f"user {who.user!r} holds none of the permissions integration, fetch.client, fetch.all; "
                     "a group granting one is declared under admin.groups", "any")


def followed_fetch(ctx: AdminContext, who: Principal, request: Request, fetch_id: str) -> FetchJob:
    """A fetch's progress, refreshed. A user without a fetch permission is refused before the
    look-up; a fetch the user may not follow answers like one that does not exist."""
    if not who.permissions & {FETCH_CLIENT, FETCH_ALL}:
        request.state.audit["detail"] = f"lacks {FETCH_CLIENT} or {FETCH_ALL}"
        raise HTTPException(403, {"error": f"user {who.user!r} lacks the permission {FETCH_CLIENT!r} or {FETCH_ALL!r}",
                                  "permission": FETCH_CLIENT})
    job = ctx.fetches.get(fetch_id)
    if not who.may_follow_fetch(job.scope):
        raise NotFound(f"no fetch {fetch_id!r} (only the last {ctx.fetches.keep} are kept, and none across a restart)")
    job.refresh(ctx.settings)
    return job


def gather_overview(ctx: AdminContext, who: Principal) -> dict:
    from admin.actions.overview import overview

    return overview(ctx.settings, ctx.producer, ctx.applied, ctx.reconciles.recent(), now=ctx.clock(),
                    clients=[c.name for c in ctx.settings.invoice_clients if who.sees_client(c.name)])

"""The console's routes, mounted on the admin API under /console.

Same process, same permissions, same audit as the API: every page calls the same action
functions, a person is the same `Principal` (from the session their token was exchanged for),
and each request is audited by the API's middleware. Not audited one by one: the static
files, the sign-in page itself, the self-refreshing parts of a page (the overview's cards,
a fetch's or a reconcile's progress), which repeat what the page showed; and failed sign-ins,
which are audited per burst like bad tokens on the API.

Forms are plain `application/x-www-form-urlencoded` POSTs carrying the session's CSRF secret;
a POST whose Origin names another site is refused too. Every answer forbids caching and
framing, and its Content-Security-Policy allows this site's own files only.
"""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from kafka.errors import KafkaError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from admin.actions import dead_letters as letters
from admin.actions.config_check import run_checks
from admin.actions.errors import OperatorError
from admin.actions.fetch import start_fetch
from admin.actions.reconcile import reconcile_csv, start_reconcile
from admin.actions.redact import settings_for_display
from admin.actions.settings_change import change_settings
from admin.actions.settings_change import describe as describe_changes
from admin.api.access import FETCH_ALL, FETCH_CLIENT, INTEGRATION, Denied, Principal, authenticate, principal_of
from admin.api.audit import read_audit
from admin.api.tokens import TokenRefused, token_id_of
from admin.console import formats
from admin.console.i18n import LANGUAGES, Translator, negotiate
from admin.console.sessions import Session
from vb2po.errors import TerminalError, TransientError
from vb2po.integration_settings import ChangeRefused, client_field, parse_assignment

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
SESSION_COOKIE = "vb2po_session"
SIGN_IN_COOKIE = "vb2po_sign_in"  # the sign-in form's CSRF secret (double submit: there is no session yet)
LANGUAGE_COOKIE = "vb2po_lang"
OVERVIEW_CACHE_S = 3.0  # one overview read serves every open console within this time
AUDIT_SHOWN = 200
TOKEN_STORE_DOWN = (TimeoutError, OSError, RuntimeError, KafkaError)  # as the API: answered 503
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # (no-referrer would make Chromium send `Origin: null` with our own forms)
}


@dataclass
class View:
    """One console request: its language, and (once signed in) the session and the person."""

    request: Request
    language: str
    t: Translator
    remember_language: bool
    session: Session | None = None
    who: Principal | None = None
    session_id: str | None = None
    notices: list = field(default_factory=list)

    def can(self, permission: str) -> bool:
        return self.who is not None and permission in self.who.permissions


@dataclass
class SignedInView(View):
    """A request of a signed-in person (what `guarded` pages get): the session and the person are known."""

    session: Session
    who: Principal


class Refusal(Exception):
    """Ends a console request with a page saying why (status, message)."""

    def __init__(self, status: int, message: str, hint: str = ""):
        super().__init__(message)
        self.status = status
        self.hint = hint


def _local_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


def install_console(app: FastAPI, ctx, *, throttle: Callable[[Request], None],
                    refused: Callable[[Request, TokenRefused, Any], None]) -> None:
    from admin.api.app import followed_fetch, gather_overview

    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    app.mount(PREFIX + "/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    overview_cache: dict[str, Any] = {"at": 0.0, "data": None}

    @app.middleware("http")
    async def console_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(PREFIX):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if request.url.path.startswith(PREFIX + "/static/"):
                response.headers["Cache-Control"] = "no-cache"
        return response

    # -- who, in which language ------------------------------------------------------------
    def secure_cookies(request: Request) -> bool:
        return request.url.scheme == "https" or ctx.settings.admin.api_url.startswith("https://")

    def view_of(request: Request) -> View:
        asked = request.query_params.get("lang")
        language = negotiate(asked, request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))
        return View(request, language, Translator(language), remember_language=asked in LANGUAGES)

    def signed_in(request: Request, *, partial: bool = False) -> SignedInView | Response:
        view = view_of(request)
        session_id = request.cookies.get(SESSION_COOKIE)
        now = ctx.clock()
        session = ctx.sessions.get(session_id, now)
        if session is None:
            return sign_in_needed(request, view, partial, ended=bool(session_id))
        try:
            record = ctx.tokens.get(session.token_id)
        except TOKEN_STORE_DOWN as exc:
            return Response(status_code=503) if partial else store_down(view, exc)
        try:
            if record is None:
                raise TokenRefused("invalid", "the token of this session is gone")
            who = principal_of(ctx.settings.admin, record, now)
        except TokenRefused as exc:  # revoked, expired, or its user removed: the session ends with it
            ctx.sessions.end(session_id)
            request.state.audit["detail"] = f"session ended: token {exc.kind}"
            return sign_in_needed(request, view, partial, ended=True)
        request.state.audit.update(actor=who.user, token_id=who.token_id)
        return SignedInView(view.request, view.language, view.t, view.remember_language, session=session, who=who,
                            session_id=session_id)

    def sign_in_needed(request: Request, view: View, partial: bool, *, ended: bool) -> Response:
        request.state.audit["skip"] = True  # nobody to name; a failed sign-in is audited when it happens
        if partial:
            return Response(status_code=401, headers={"X-Sign-In": PREFIX + "/sign-in"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target, **({"ended": "1"} if ended else {}),
                 **({"lang": view.language} if view.remember_language else {})}
        return RedirectResponse(f"{PREFIX}/sign-in?{urlencode(query)}", status_code=303)

    def store_down(view: View, exc: Exception) -> HTMLResponse:
        view.request.state.audit["detail"] = f"the token store cannot be read right now ({type(exc).__name__})"
        return render(view, "error.html", status=503, headline=view.t("error"), hint=view.t("try_again"),
                      message=view.request.state.audit["detail"])

    def audit(request: Request, action: str, target: Any = None, *, skip: bool = False) -> None:
        request.state.audit.update(action=action, target=target, skip=skip)

    # -- rendering ---------------------------------------------------------------------------
    def ago(seconds: float | None, t: Translator) -> str:
        if seconds is None:
            return ""
        n = max(0, int(seconds))
        if n < 120:
            return t("seconds_ago", n=n)
        if n < 7200:
            return t("minutes_ago", n=n // 60)
        if n < 172800:
            return t("hours_ago", n=n // 3600)
        return t("days_ago", n=n // 86400)

    def tally(counted: dict, t: Translator) -> str:
        count = counted.get("count", 0)
        words = t("payments_one") if count == 1 else t("payments_count", count=count)
        amounts = ", ".join(formats.amount(a, c) for c, a in counted.get("amounts", {}).items())
        return f"{words}, {amounts}" if amounts else words

    def render(view: View, template: str, *, status: int = 200, section: str | None = None, **data: Any) -> HTMLResponse:
        zone = ctx.settings.zone
        t = view.t
        html = env.get_template(template).render(
            view=view, t=t, lang=view.language, who=view.who, section=section,
            csrf=view.session.csrf if view.session else "",
            notices=view.session.take_notices() if view.session and not template.startswith("_") else [],
            can_integration=view.can(INTEGRATION), can_fetch_client=view.can(FETCH_CLIENT),
            can_fetch_all=view.can(FETCH_ALL), amount=formats.amount, day=lambda v: formats.day(v, zone),
            moment=lambda v, seconds=False: formats.moment(v, zone, seconds=seconds), ago=lambda s: ago(s, t),
            tally=lambda c: tally(c, t), reason=t.reason, path=view.request.url.path, quote=quote, **data)
        response = HTMLResponse(html, status_code=status)
        if view.remember_language:
            response.set_cookie(LANGUAGE_COOKIE, view.language, max_age=365 * 86400, path=PREFIX, httponly=True,
                                samesite="strict", secure=secure_cookies(view.request))
        return response

    def refusal_page(view: View, exc: Exception) -> HTMLResponse:
        status, message, hint = 500, str(exc), ""
        if isinstance(exc, Refusal):
            status, hint = exc.status, exc.hint
        elif isinstance(exc, HTTPException):
            status = exc.status_code
            message = exc.detail.get("error", "") if isinstance(exc.detail, dict) else str(exc.detail)
        elif isinstance(exc, Denied):
            status = 403
        elif isinstance(exc, OperatorError):
            status, hint = exc.status, exc.hint
        elif isinstance(exc, TransientError):
            status, message, hint = 503, f"{exc.reason}: {exc}", view.t("try_again")
        elif isinstance(exc, TerminalError):
            status, message = 500, f"{exc.reason}: {exc}"
        view.request.state.audit["detail"] = ctx.redactor.text(message)[:500]
        if status == 403:
            headline = view.t("not_allowed")
        elif status == 404:
            headline = view.t("not_found")
        else:
            headline = view.t("error")
        return render(view, "error.html", status=status, headline=headline, message=ctx.redactor.text(message),
                      hint=ctx.redactor.text(hint))

    def guarded(request: Request, run: Callable[[SignedInView], Response], *, partial: bool = False) -> Response:
        view = signed_in(request, partial=partial)
        if isinstance(view, Response):
            return view
        try:
            return run(view)
        except (Refusal, HTTPException, Denied, OperatorError, TransientError, TerminalError) as exc:
            if partial:
                return Response(status_code=getattr(exc, "status", getattr(exc, "status_code", 500)))
            return refusal_page(view, exc)

    def require(view: SignedInView, *permissions: str) -> None:
        """At least one of `permissions` (any of the three when none is named)."""
        wanted = set(permissions) or {INTEGRATION, FETCH_CLIENT, FETCH_ALL}
        if not (view.who.permissions & wanted):
            view.request.state.audit["detail"] = f"lacks {' or '.join(sorted(wanted))}"
            message = view.t("no_permission") if not permissions else view.t("not_allowed")
            raise Refusal(403, message)

    async def form_of(request: Request) -> dict[str, list[str]]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return {}
        return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)

    def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
        return (form.get(name) or [default])[0]

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return True  # no Origin (an older browser): the CSRF secret decides
        return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"

    def check_form(view: SignedInView, form: dict[str, list[str]]) -> None:
        if not same_origin(view.request) or not hmac.compare_digest(first(form, "csrf"), view.session.csrf):
            view.request.state.audit["detail"] = "CSRF check failed"
            raise Refusal(403, view.t("csrf_failed"))

    def see_other(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    # -- sign-in and sign-out ---------------------------------------------------------------
    def sign_in_page(view: View, *, status: int = 200, problem: str = "", next_url: str = PREFIX + "/") -> HTMLResponse:
        secret = secrets.token_urlsafe(24)
        response = render(view, "sign_in.html", status=status, problem=problem, next_url=next_url, sign_in_csrf=secret,
                          signed_out=view.request.query_params.get("signed_out") == "1",
                          ended=view.request.query_params.get("ended") == "1")
        response.set_cookie(SIGN_IN_COOKIE, secret, max_age=3600, path=PREFIX + "/sign-in", httponly=True,
                            samesite="strict", secure=secure_cookies(view.request))
        return response

    @app.get(PREFIX, include_in_schema=False)
    def console_root(request: Request) -> Response:
        audit(request, "console", skip=True)
        return see_other(PREFIX + "/")

    @app.get(PREFIX + "/sign-in", include_in_schema=False)
    def sign_in_form(request: Request) -> Response:
        audit(request, "console.sign_in_page", skip=True)
        return sign_in_page(view_of(request), next_url=_local_next(request.query_params.get("next")))

    @app.post(PREFIX + "/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(_sign_in, request, form)

    def _sign_in(request: Request, form: dict[str, list[str]]) -> Response:
        view = view_of(request)
        audit(request, "console.sign_in")
        next_url = _local_next(first(form, "next"))
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        if not expected or not same_origin(request) or not hmac.compare_digest(first(form, "csrf"), expected):
            request.state.audit["detail"] = "CSRF check failed"
            return sign_in_page(view, status=403, problem=view.t("csrf_failed"), next_url=next_url)
        try:
            throttle(request)
        except HTTPException as exc:
            # ignore: Starlette types detail as str, but FastAPI's HTTPException takes any detail (throttle's is a dict)
            seconds = exc.detail["retry_after_s"]  # type: ignore[index]
            return sign_in_page(view, status=429, problem=view.t("throttled", seconds=seconds), next_url=next_url)
        token = first(form, "token").strip()
        token_id = token_id_of(token)
        request.state.audit["token_id"] = token_id
        try:
            record = ctx.tokens.get(token_id) if token_id else None
        except TOKEN_STORE_DOWN as exc:
            return store_down(view, exc)
        now = ctx.clock()
        try:
            who = authenticate(ctx.settings.admin, token, record, now)
        except TokenRefused as exc:
            refused(request, exc, record)
            return sign_in_page(view, status=401, problem=view.t("bad_token"), next_url=next_url)
        session_id, session = ctx.sessions.create(record, now)
        request.state.audit.update(actor=who.user, token_id=who.token_id,
                                   detail=f"session until {session.expires_at.isoformat()}")
        response = see_other(next_url)
        response.set_cookie(SESSION_COOKIE, session_id, max_age=int((session.expires_at - now).total_seconds()),
                            path=PREFIX, httponly=True, samesite="strict", secure=secure_cookies(request))
        response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX + "/sign-in")
        return response

    @app.post(PREFIX + "/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        form = await form_of(request)

        def run(view: SignedInView) -> Response:
            audit(request, "console.sign_out")
            check_form(view, form)
            ctx.sessions.end(view.session_id)
            response = see_other(f"{PREFIX}/sign-in?signed_out=1")
            response.delete_cookie(SESSION_COOKIE, path=PREFIX)
            return response
        return await run_in_threadpool(guarded, request, run)

    # -- overview ---------------------------------------------------------------------------
    def current_overview(view: SignedInView) -> dict:
        """Every client's card (shared for a few seconds), then only those this person may see."""
        if overview_cache["data"] is None or time.monotonic() - overview_cache["at"] > OVERVIEW_CACHE_S:
            everyone = Principal("console", "-", (), frozenset({INTEGRATION}))
            overview_cache["data"], overview_cache["at"] = gather_overview(ctx, everyone), time.monotonic()
        data = overview_cache["data"]
        return {**data, "clients": [c for c in data["clients"] if view.who.sees_client(c["client"])]}

    @app.get(PREFIX + "/", include_in_schema=False)
    def overview_page(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.overview")
            require(view)
            return render(view, "overview.html", section="overview", overview=current_overview(view))
        return guarded(request, run)

    @app.get(PREFIX + "/overview/cards", include_in_schema=False)
    def overview_cards(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.overview.refresh", skip=True)
            require(view)
            return render(view, "_cards.html", overview=current_overview(view))
        return guarded(request, run, partial=True)

    # -- fetch ------------------------------------------------------------------------------
    def fetchable_clients(view: SignedInView) -> list[str]:
        if not view.can(FETCH_CLIENT):
            return []
        return [c.name for c in ctx.settings.invoice_clients if view.who.sees_client(c.name)]

    @app.get(PREFIX + "/fetch", include_in_schema=False)
    def fetch_page(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.fetch")
            require(view, FETCH_CLIENT, FETCH_ALL)
            return render(view, "fetch.html", section="fetch", clients=fetchable_clients(view),
                          chosen=request.query_params.get("client"), problem=None)
        return guarded(request, run)

    @app.post(PREFIX + "/fetch", include_in_schema=False)
    async def fetch(request: Request) -> Response:
        form = await form_of(request)

        def run(view: SignedInView) -> Response:
            everything = first(form, "all") == "1"
            client = None if everything else first(form, "client")
            audit(request, FETCH_ALL if everything else FETCH_CLIENT, client or "all")
            check_form(view, form)
            view.who.require_fetch(client)  # the API's rule, on the name alone
            try:
                job = start_fetch(ctx.settings, ctx.producer, client, view.who.user)
            except OperatorError as exc:
                request.state.audit["detail"] = ctx.redactor.text(str(exc))
                return render(view, "fetch.html", section="fetch", status=exc.status, clients=fetchable_clients(view),
                              chosen=client, problem=ctx.redactor.text(f"{exc} {exc.hint}".strip()))
            ctx.fetches.add(job.fetch_id, job)
            request.state.audit["detail"] = f"{job.published} published, {job.as_dict()['bad_rows']} bad rows"
            return see_other(f"{PREFIX}/fetch/{job.fetch_id}")
        return await run_in_threadpool(guarded, request, run)

    def fetch_state(view: SignedInView, fetch_id: str) -> dict:
        job = followed_fetch(ctx, view.who, view.request, fetch_id)
        return ctx.redactor.data(job.as_dict())

    @app.get(PREFIX + "/fetch/{fetch_id}", include_in_schema=False)
    def fetch_job_page(fetch_id: str, request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.fetch.progress", fetch_id)
            return render(view, "fetch_job.html", section="fetch", job=fetch_state(view, fetch_id))
        return guarded(request, run)

    @app.get(PREFIX + "/fetch/{fetch_id}/progress", include_in_schema=False)
    def fetch_job_progress(fetch_id: str, request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.fetch.progress", fetch_id, skip=True)
            return render(view, "_fetch_progress.html", job=fetch_state(view, fetch_id))
        return guarded(request, run, partial=True)

    # -- dead letters -----------------------------------------------------------------------
    def client_of_company(company_no: int | None) -> str:
        for c in ctx.settings.invoice_clients:
            if ctx.settings.company_of(c) == company_no:
                return c.name
        return "" if company_no is None else str(company_no)

    @app.get(PREFIX + "/dead-letters", include_in_schema=False)
    def dead_letters_page(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.dead_letters")
            require(view, INTEGRATION)
            only_open = request.query_params.get("state", "open") == "open"
            found = letters.list_letters(ctx.settings.kafka, only_open=only_open)
            rows = [{**ctx.redactor.data(e.summary()), "client": client_of_company(e.letter.company_no),
                     "redrivable": e.redrivable is None} for e in reversed(found)]
            return render(view, "dead_letters.html", section="dead_letters", rows=rows, only_open=only_open)
        return guarded(request, run)

    @app.get(PREFIX + "/dead-letters/{letter_id}", include_in_schema=False)
    def dead_letter_page(letter_id: str, request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.dead_letters.show", letter_id)
            require(view, INTEGRATION)
            entry = letters.get_letter(ctx.settings.kafka, letter_id)
            return render(view, "dead_letter.html", section="dead_letters", letter=ctx.redactor.data(entry.full()),
                          client=client_of_company(entry.letter.company_no),
                          why_not=ctx.redactor.text(entry.redrivable or ""))
        return guarded(request, run)

    @app.post(PREFIX + "/dead-letters/redrive", include_in_schema=False)
    async def redrive(request: Request) -> Response:
        form = await form_of(request)

        def run(view: SignedInView) -> Response:
            ids = [i for i in form.get("id", []) if i]
            audit(request, "dead_letters.redrive", ids)
            require(view, INTEGRATION)
            check_form(view, form)
            back = f"{PREFIX}/dead-letters/{ids[0]}" if len(ids) == 1 else f"{PREFIX}/dead-letters"
            if not ids:
                view.session.notice("error", view.t("dl_choose"))
                return see_other(back)
            results = letters.redrive(ctx.settings.kafka, letters.select_letters(ctx.settings.kafka, ids))
            entry = letters.redriven_entry(view.who.user, view.who.token_id, results)
            if entry is not None:
                ctx.audit.write(entry)
            done = [r for r in results if r["outcome"] == "redriven"]
            skipped = [r for r in results if r["outcome"] == "skipped"]
            request.state.audit["detail"] = f"{len(done)} redriven, {len(skipped)} skipped"
            if done:
                view.session.notice("ok", view.t("dl_redriven_n", n=len(done)))
            if skipped:
                view.session.notice("error", view.t("dl_skipped_n", n=len(skipped),
                                                    why=ctx.redactor.text(skipped[0]["why"])))
            return see_other(back)
        return await run_in_threadpool(guarded, request, run)

    # -- settings ---------------------------------------------------------------------------
    def setting_rows(view: View) -> tuple[dict, list[dict]]:
        described = describe_changes(ctx.live)
        rows = []
        for f in described["fields"]:
            parts = client_field(f["path"])
            label = (view.t(f"s_{parts[1]}", client=parts[0]) if parts else view.t(f"s_{f['path']}"))
            rows.append({**f, "label": label, "text": as_text(f["value"]), "file_text": as_text(f["file_value"]),
                         "kind": "bool" if isinstance(f["value"], bool) else "date" if f["path"] == "lookback_date"
                         else "text"})
        return described, rows

    def as_text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)

    def submitted_changes(view: View, form: dict[str, list[str]], rows: list[dict]) -> dict[str, Any]:
        """The fields whose text differs from what they hold now, read like `vb2po config set`."""
        changes: dict[str, Any] = {}
        for row in rows:
            sent = form.get(f"v:{row['path']}")
            if sent is None or sent[0].strip() == row["text"]:
                continue
            text = sent[0].strip()
            if isinstance(row["value"], list) or row["path"].endswith("voucher_types"):
                text = f"[{text}]"
            if row["path"].endswith(".company_no") and text == "":
                text = "null"
            try:
                changes[row["path"]] = parse_assignment(f"{row['path']}={text}")[1]
            except ChangeRefused:
                raise Refusal(400, view.t("invalid_value", path=row["path"], value=sent[0])) from None
        return changes

    def settings_view(view: View, *, status: int = 200, preview: dict | None = None, checks: list | None = None,
                      problem: str = "", sent: dict | None = None) -> HTMLResponse:
        described, rows = setting_rows(view) if ctx.live is not None else ({}, [])
        return render(view, "settings.html", status=status, section="settings", described=described, rows=rows,
                      preview=preview, checks=checks, problem=problem, sent=sent or {},
                      shown=ctx.redactor.data(settings_for_display(ctx.settings)))

    @app.get(PREFIX + "/settings", include_in_schema=False)
    def settings_page(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.settings")
            require(view, INTEGRATION)
            return settings_view(view)
        return guarded(request, run)

    @app.post(PREFIX + "/settings", include_in_schema=False)
    async def change(request: Request) -> Response:
        form = await form_of(request)

        def run(view: SignedInView) -> Response:
            step = first(form, "step", "check")
            audit(request, {"check": "config.change.dry_run", "apply": "config.change",
                            "test": "config.check"}.get(step, "config.change"))
            require(view, INTEGRATION)
            check_form(view, form)
            if step == "test":
                findings = [f.as_dict() for f in run_checks(ctx.settings)]
                return settings_view(view, checks=ctx.redactor.data(findings))
            if ctx.live is None:
                raise Refusal(409, "this process does not follow setting changes", "change the settings file instead")
            _, rows = setting_rows(view)
            changes = submitted_changes(view, form, rows)
            sent = {r["path"]: first(form, f"v:{r['path']}", r["text"]) for r in rows}
            request.state.audit["target"] = {"set": changes, "reset": []}
            if not changes:
                view.session.notice("ok", view.t("change_none"))
                return see_other(PREFIX + "/settings")
            version = first(form, "expected_version")
            try:
                answer = change_settings(ctx.live, set_values=changes, reset=[], actor=view.who.user, now=ctx.clock(),
                                         dry_run=step != "apply", expected_version=int(version) if version else None,
                                         verify=ctx.verify_change)
            except OperatorError as exc:
                request.state.audit["detail"] = ctx.redactor.text(str(exc))
                return settings_view(view, status=exc.status, sent=sent,
                                     problem=ctx.redactor.text(view.t("change_refused", error=f"{exc} {exc.hint}".strip())))
            answer = ctx.redactor.data(answer)
            request.state.audit["detail"] = (f"version {answer['version']}: " + ", ".join(
                f"{c['path']} {c['before']!r} -> {c['after']!r}" for c in answer["changes"]))
            if step == "apply":
                view.session.notice("ok", view.t("change_saved", version=answer["version"]))
                return see_other(PREFIX + "/settings")
            return settings_view(view, preview=answer, sent=sent)
        return await run_in_threadpool(guarded, request, run)

    # -- audit log --------------------------------------------------------------------------
    @app.get(PREFIX + "/audit", include_in_schema=False)
    def audit_page(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            actor = request.query_params.get("actor") or None
            audit(request, "audit.list", actor)
            require(view, INTEGRATION)
            entries = [vars(e) for e in read_audit(ctx.settings.kafka) if actor is None or e.actor == actor]
            shown = ctx.redactor.data(list(reversed(entries[-AUDIT_SHOWN:])))
            return render(view, "audit.html", section="audit", entries=shown, actor=actor or "", limit=AUDIT_SHOWN)
        return guarded(request, run)

    # -- reconcile --------------------------------------------------------------------------
    @app.get(PREFIX + "/reconcile", include_in_schema=False)
    def reconcile_page(request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "console.reconcile")
            require(view, INTEGRATION)
            runs = [j.as_dict() for j in ctx.reconciles.recent()]
            return render(view, "reconcile.html", section="reconcile", runs=runs,
                          clients=[c.name for c in ctx.settings.invoice_clients])
        return guarded(request, run)

    @app.post(PREFIX + "/reconcile", include_in_schema=False)
    async def reconcile(request: Request) -> Response:
        form = await form_of(request)

        def run(view: SignedInView) -> Response:
            client = first(form, "client") or None
            audit(request, "reconcile", client or "all")
            require(view, INTEGRATION)
            check_form(view, form)
            job = start_reconcile(ctx.settings, client, view.who.user)
            ctx.reconciles.add(job.reconcile_id, job)
            return see_other(f"{PREFIX}/reconcile/{job.reconcile_id}")
        return await run_in_threadpool(guarded, request, run)

    def reconcile_state(view: SignedInView, reconcile_id: str) -> dict:
        require(view, INTEGRATION)
        return ctx.redactor.data(ctx.reconciles.get(reconcile_id).as_dict())

    @app.get(PREFIX + "/reconcile/{reconcile_id}", include_in_schema=False)
    def reconcile_job_page(reconcile_id: str, request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "reconcile.progress", reconcile_id)
            return render(view, "reconcile_job.html", section="reconcile", job=reconcile_state(view, reconcile_id))
        return guarded(request, run)

    @app.get(PREFIX + "/reconcile/{reconcile_id}/progress", include_in_schema=False)
    def reconcile_job_progress(reconcile_id: str, request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "reconcile.progress", reconcile_id, skip=True)
            return render(view, "_reconcile_progress.html", job=reconcile_state(view, reconcile_id))
        return guarded(request, run, partial=True)

    @app.get(PREFIX + "/reconcile/{reconcile_id}/report.csv", include_in_schema=False)
    def reconcile_csv_download(reconcile_id: str, request: Request) -> Response:
        def run(view: SignedInView) -> Response:
            audit(request, "reconcile.report_csv", reconcile_id)
            job = reconcile_state(view, reconcile_id)
            if not job["finished"] or job["error"]:
                raise Refusal(409, view.t("reconcile_running"))
            return Response(reconcile_csv(job), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="avstemming-{reconcile_id}.csv"'})
        return guarded(request, run)

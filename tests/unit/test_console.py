"""The console without a browser or a broker: Norwegian formats, the language choice, sessions,
CSRF, sign-in limits, and the colours' contrast (WCAG 2.1 AA)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from admin.actions.producer_view import FakeProducer
from admin.actions.redact import Redactor
from admin.api.app import AdminContext, create_admin_app
from admin.api.audit import MemoryAuditLog
from admin.api.throttle import FailedAuthLimiter
from admin.api.token_store import MemoryTokenStore
from admin.api.tokens import issue
from admin.console import formats
from admin.console.i18n import MESSAGES, REASONS, Translator, negotiate
from admin.console.sessions import SessionStore
from tests.unit.test_admin_guards import SETTINGS
from vb2po.http_server import BackgroundServer

OSLO = ZoneInfo("Europe/Oslo")
CSS = Path(__file__).resolve().parents[2] / "admin" / "console" / "static" / "console.css"


@pytest.mark.parametrize("value, shown", [
    ("1234.5", "1 234,50 kr"), (Decimal("0"), "0,00 kr"), ("-1234567.891", "−1 234 567,89 kr"), ("12", "12,00 kr"),
])
def test_amounts_are_written_the_norwegian_way(value, shown):
    assert formats.amount(value).replace("\u00a0", " ") == shown
    assert " " not in formats.amount(value)  # no-break spaces: an amount never breaks over two lines


def test_dates_and_times_are_written_the_norwegian_way_in_oslo_time():
    assert formats.day(date(2026, 11, 30)) == "30.11.2026"
    assert formats.day("2026-03-05") == "05.03.2026"
    assert formats.moment("2026-11-30T13:05:07+00:00", OSLO) == "30.11.2026 14:05"
    assert formats.moment(datetime(2026, 6, 1, 22, 0, 9, tzinfo=timezone.utc), OSLO, seconds=True) == "02.06.2026 00:00:09"


@pytest.mark.parametrize("query, cookie, header, chosen", [
    (None, None, None, "nb"), (None, None, "en-US,en;q=0.9", "en"), (None, None, "nn-NO,en;q=0.8", "nb"),
    (None, None, "de-DE,en;q=0.5", "en"), (None, None, "de-DE", "nb"), (None, "en", "nb-NO", "en"),
    ("nb", "en", "en", "nb"), ("xx", None, "en;q=0", "nb"),
])
def test_the_language_is_the_switch_then_the_remembered_choice_then_the_browsers_else_norwegian(query, cookie, header,
                                                                                             chosen):
    assert negotiate(query, cookie, header) == chosen


def test_every_text_and_every_reason_exists_in_both_languages():
    for key, pair in MESSAGES.items():
        assert len(pair) == 2 and all(pair), key
        assert set(re.findall(r"{(\w+)}", pair[0])) == set(re.findall(r"{(\w+)}", pair[1])), key
    for reason, pairs in REASONS.items():
        assert all(all(texts) for texts in pairs), reason
    assert Translator("en").reason("something_new")[0] == "The transfer failed (something_new)."


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("foreground, background, least", [
    ("text", "page", 4.5), ("muted", "page", 4.5), ("link", "page", 4.5), ("accent-text", "accent", 4.5),
    ("header-text", "header", 4.5), ("bad", "page", 4.5), ("good", "page", 4.5), ("text", "soft", 4.5),
    ("text", "ok-bg", 4.5), ("text", "error-bg", 4.5), ("bad", "error-bg", 4.5), ("link", "soft", 4.5),
    ("muted", "soft", 4.5), ("good", "ok-bg", 4.5),
    ("focus", "page", 3.0), ("line", "page", 3.0), ("accent", "page", 3.0),  # focus ring, borders, buttons
])
def test_the_colours_meet_wcag_aa_contrast(foreground, background, least):
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))
    assert contrast(colours[foreground], colours[background]) >= least


def test_a_session_ends_with_its_token_and_never_outlives_it():
    now = datetime(2026, 11, 30, 8, tzinfo=timezone.utc)
    issued = issue("ida", created_by="t", now=now, ttl=timedelta(hours=2))
    store = SessionStore()
    session_id, session = store.create(issued.record, now)
    assert session.expires_at == now + timedelta(hours=2)  # the token's expiry, before the 8 hours
    assert store.get(session_id, now + timedelta(hours=1)) is session
    assert store.get(session_id, now + timedelta(hours=2)) is None
    assert store.get("not-a-session", now) is None


@pytest.fixture
def console():
    store, audit = MemoryTokenStore(), MemoryAuditLog()
    now = datetime.now(timezone.utc)
    tokens = {}
    for user in ("ida", "otto"):
        issued = issue(user, created_by="test", now=now, ttl=timedelta(hours=1))
        store.put(issued.record)
        tokens[user] = issued.token
    context = AdminContext(SETTINGS, store, audit, FakeProducer(), Redactor.from_settings(SETTINGS),
                           auth_limiter=FailedAuthLimiter(capacity=2, refill_per_s=0.01, quiet_s=3600))
    with BackgroundServer(create_admin_app(context)) as server:
        yield server.url, tokens, context, audit


def sign_in(url: str, token: str, session: requests.Session | None = None) -> tuple[requests.Session, requests.Response]:
    session = session or requests.Session()
    page = session.get(url + "/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = session.post(url + "/console/sign-in", data={"csrf": csrf, "token": token, "next": "/console/fetch"},
                          headers={"Origin": url}, allow_redirects=False)
    return session, answer


def test_a_token_becomes_a_session_cookie_and_a_form_without_its_csrf_secret_is_refused(console):
    url, tokens, context, audit = console
    browser, answer = sign_in(url, tokens["otto"])
    assert answer.status_code == 303 and answer.headers["location"] == "/console/fetch"
    cookie = answer.headers["set-cookie"]
    assert "vb2po_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert tokens["otto"] not in cookie
    page = browser.get(url + "/console/fetch")
    assert page.status_code == 200 and tokens["otto"] not in page.text
    assert (audit.entries[0].action, audit.entries[0].actor, audit.entries[0].outcome) == ("console.sign_in", "otto", "ok")
    for forged in ({"client": "nord"}, {"client": "nord", "csrf": "guess"}):
        refused = browser.post(url + "/console/fetch", data=forged, headers={"Origin": url})
        assert refused.status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    elsewhere = browser.post(url + "/console/fetch", data={"client": "nord", "csrf": csrf},
                             headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and context.producer.fetched == []


def test_revoking_the_token_ends_its_console_session_at_the_next_request(console):
    url, tokens, context, _ = console
    browser, _ = sign_in(url, tokens["otto"])
    assert browser.get(url + "/console/fetch", allow_redirects=False).status_code == 200
    record = context.tokens.get(tokens["otto"].split("_")[1])
    context.tokens.put(record.revoke("ida", datetime.now(timezone.utc)))
    answer = browser.get(url + "/console/fetch", allow_redirects=False)
    assert answer.status_code == 303 and "ended=1" in answer.headers["location"]


def test_failed_sign_ins_are_limited_per_address_and_audited_as_one_burst(console):
    url, tokens, context, audit = console
    statuses = [sign_in(url, "vb2po_0123456789ab_" + "C" * 43)[1].status_code for _ in range(4)]
    assert statuses == [401, 401, 429, 429]
    _, limited = sign_in(url, tokens["ida"])  # the address waits, whatever it presents
    assert limited.status_code == 429 and "Prøv igjen om" in limited.text
    assert [e for e in audit.entries if e.action != "console.sign_in"] == []
    context.audit_finished_bursts(everything=True)
    [burst] = [e for e in audit.entries if e.action == "auth.failed"]
    assert burst.target["attempts"] == 5 and burst.target["paths"] == {"/console/sign-in": 5}


def test_a_token_store_that_cannot_be_read_is_a_503_page_not_a_crash(console):
    url, tokens, context, _ = console
    browser, _ = sign_in(url, tokens["otto"])

    def down(token_id):
        raise TimeoutError("kafka")
    context.tokens.get = down
    answer = browser.get(url + "/console/fetch", allow_redirects=False)
    assert answer.status_code == 503 and "Prøv igjen om litt" in answer.text

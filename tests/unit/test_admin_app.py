"""The admin API over real HTTP with its in-memory fakes (token store, audit log, producer):
authentication, permission checks and auditing, without a broker."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from admin.actions.producer_view import FakeProducer
from admin.actions.redact import Redactor
from admin.api.app import AdminContext, create_admin_app
from admin.api.audit import MemoryAuditLog
from admin.api.token_store import MemoryTokenStore
from admin.api.tokens import issue
from producer.payments import PollOutcome
from vb2po.http_server import BackgroundServer
from vb2po.settings import Settings

SETTINGS = Settings(
    lookback_date="2026-01-01", integration_enabled=False,
    companies=[{"company_no": 1, "odbc": "Driver=SQLite3;Database=/nowhere/F0001.db;PWD=odbc-secret-1"}],
    invoice_clients=[{"name": "hovedkontor", "client_key": "client-key-secret"}],
    admin={"enabled": True, "groups": [{"name": "ops", "permissions": ["integration"]},
                                       {"name": "overview", "permissions": ["fetch.client"]}],
           "users": [{"name": "ida", "groups": ["ops"]}, {"name": "otto", "groups": ["overview"]}]},
)


@pytest.fixture
def api():
    store, audit = MemoryTokenStore(), MemoryAuditLog()
    now = datetime.now(timezone.utc)
    tokens = {}
    for user in ("ida", "otto"):
        issued = issue(user, created_by="test", now=now, ttl=timedelta(hours=1))
        store.put(issued.record)
        tokens[user] = issued.token
    context = AdminContext(SETTINGS, store, audit, FakeProducer(outcomes={1: [PollOutcome(published=2)]}),
                           Redactor.from_settings(SETTINGS))
    with BackgroundServer(create_admin_app(context)) as server:
        def call(method, path, user=None, **kw):
            headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
            return requests.request(method, server.url + path, headers=headers, timeout=10, **kw)
        yield call, audit, store, context


def test_a_user_sees_who_the_token_makes_them(api):
    call, *_ = api
    me = call("GET", "/v1/me", "otto").json()
    assert (me["user"], me["permissions"]) == ("otto", ["fetch.client"])


def test_fetch_is_refused_without_the_permission_and_before_anything_is_polled(api):
    call, audit, _, context = api
    assert call("POST", "/v1/fetch", "ida", json={"client": "hovedkontor"}).status_code == 403
    assert context.producer.fetched == []
    assert (audit.entries[-1].actor, audit.entries[-1].action, audit.entries[-1].outcome) == ("ida", "fetch.client", "denied")


def test_fetch_is_refused_while_the_integration_is_switched_off(api):
    call, audit, _, context = api
    answer = call("POST", "/v1/fetch", "otto", json={"client": "hovedkontor"})
    assert answer.status_code == 409 and "integration_enabled" in answer.json()["hint"]
    assert context.producer.fetched == [] and audit.entries[-1].outcome == "conflict"


def test_a_new_token_is_shown_once_and_listed_without_it(api):
    call, _, store, _ = api
    created = call("POST", "/v1/tokens", "ida", json={"user": "otto", "ttl_days": 1})
    assert created.status_code == 201 and created.json()["token"].startswith("vb2po_")
    listed = call("GET", "/v1/tokens", "ida").text
    assert created.json()["token_id"] in listed and created.json()["token"] not in listed
    assert all(r.sha256 not in listed for r in store.all())


def test_an_invalid_request_is_refused_without_echoing_it_and_every_request_is_audited(api):
    call, audit, *_ = api
    answer = call("POST", "/v1/tokens", "ida", json={"user": "otto", "ttl_days": "client-key-secret"})
    assert answer.status_code == 400 and "client-key-secret" not in answer.text
    assert call("GET", "/v1/no-such-route", "ida").status_code == 404
    assert [(e.action, e.outcome) for e in audit.entries] == [("POST /v1/tokens", "invalid"), ("unknown_route", "not_found")]
    assert audit.entries[-1].path == "/v1/no-such-route"

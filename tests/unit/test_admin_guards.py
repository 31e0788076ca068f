"""The admin API's guards: users limited to invoice clients, permissions checked before any
look-up, and failed authentications limited per address and audited once per burst."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from pydantic import ValidationError

from admin.actions.fetch import FetchJob
from admin.actions.producer_view import FakeProducer
from admin.actions.redact import Redactor
from admin.api.app import AdminContext, create_admin_app
from admin.api.audit import MemoryAuditLog
from admin.api.throttle import FailedAuthLimiter
from admin.api.token_store import MemoryTokenStore
from admin.api.tokens import issue
from producer.payments import PollOutcome
from vb2po.http_server import BackgroundServer
from vb2po.settings import Settings

GROUPS = [{"name": "ops", "permissions": ["integration"]}, {"name": "overview", "permissions": ["fetch.client"]},
          {"name": "import", "permissions": ["fetch.all"]}]
USERS = [{"name": "ida", "groups": ["ops"]}, {"name": "otto", "groups": ["overview"], "clients": ["nord"]},
         {"name": "oda", "groups": ["overview"]}, {"name": "frida", "groups": ["import"]}, {"name": "nils"}]


def settings(users=USERS, groups=GROUPS) -> Settings:
    return Settings(
        lookback_date="2026-01-01", integration_enabled=False,  # a fetch that passes its guards stops at 409
        companies=[{"company_no": 1, "odbc": "Driver=SQLite3;Database=/nowhere/F0001.db"},
                   {"company_no": 2, "odbc": "Driver=SQLite3;Database=/nowhere/F0002.db"}],
        invoice_clients=[{"name": "nord", "client_key": "key-nord", "company_no": 1},
                         {"name": "sor", "client_key": "key-sor", "company_no": 2}],
        admin={"enabled": True, "groups": groups, "users": users},
    )


SETTINGS = settings()


def test_a_user_limited_to_clients_names_known_ones():
    with pytest.raises(ValidationError, match=r"unknown invoice client\(s\) \['vest'\]"):
        settings([{"name": "otto", "groups": ["overview"], "clients": ["nord", "vest"]}])


@pytest.mark.parametrize("group", ["ops", "import"])
def test_a_limit_to_clients_is_refused_beside_a_permission_that_acts_on_every_client(group):
    with pytest.raises(ValidationError, match="act on every client"):
        settings([{"name": "otto", "groups": ["overview", group], "clients": ["nord"]}])


@pytest.fixture
def api():
    store, audit = MemoryTokenStore(), MemoryAuditLog()
    now = datetime.now(timezone.utc)
    tokens = {}
    for user in ("ida", "otto", "oda", "frida", "nils"):
        issued = issue(user, created_by="test", now=now, ttl=timedelta(hours=1))
        store.put(issued.record)
        tokens[user] = issued.token
    producer = FakeProducer(outcomes={1: [PollOutcome(published=1)], 2: [PollOutcome(published=2)]})
    context = AdminContext(SETTINGS, store, audit, producer, Redactor.from_settings(SETTINGS),
                           auth_limiter=FailedAuthLimiter(capacity=3, refill_per_s=0.01, quiet_s=3600))
    with BackgroundServer(create_admin_app(context)) as server:
        def call(method, path, user=None, token=None, **kw):
            token = token or (tokens[user] if user else None)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return requests.request(method, server.url + path, headers=headers, timeout=10, **kw)
        yield call, audit, context, tokens


def test_a_user_limited_to_one_client_fetches_for_it_and_not_for_another(api):
    call, audit, context, _ = api
    assert call("POST", "/v1/fetch", "otto", json={"client": "nord"}).status_code == 409  # allowed (then: switched off)
    for client in ("sor", "no-such-client"):  # the same answer: the name is not looked up
        refused = call("POST", "/v1/fetch", "otto", json={"client": client})
        assert refused.status_code == 403 and "only for the invoice client(s) nord" in refused.json()["error"]
    assert [(e.action, e.target, e.outcome) for e in audit.entries[-2:]] == [
        ("fetch.client", "sor", "denied"), ("fetch.client", "no-such-client", "denied")]
    assert call("POST", "/v1/fetch", "oda", json={"client": "sor"}).status_code == 409  # no limit: every client
    assert context.producer.fetched == []
    assert call("GET", "/v1/me", "otto").json()["clients"] == ["nord"]


def test_a_fetch_is_followed_only_by_those_who_may_and_others_cannot_tell_it_exists(api):
    call, _, context, _ = api
    fetch_id = "fetch-5a5a5a5a5a"
    context.fetches.add(fetch_id, FetchJob(fetch_id, "client:sor", "oda", [], {}))
    assert call("GET", f"/v1/fetch/{fetch_id}", "oda").status_code == 200
    for user in ("ida", "nils"):  # no fetch permission: refused before the look-up
        assert call("GET", f"/v1/fetch/{fetch_id}", user).status_code == 403
        assert call("GET", "/v1/fetch/fetch-0000000000", user).status_code == 403
    for user in ("otto", "frida"):  # may fetch, not this one: as if it did not exist
        assert call("GET", f"/v1/fetch/{fetch_id}", user).status_code == 404
        assert call("GET", "/v1/fetch/fetch-0000000000", user).status_code == 404


def test_revoking_another_users_token_is_refused_alike_whether_it_exists_or_not(api):
    call, _, context, tokens = api
    ida_token_id = tokens["ida"].split("_")[1]
    existing = call("DELETE", f"/v1/tokens/{ida_token_id}", "otto")
    missing = call("DELETE", "/v1/tokens/0123456789ab", "otto")
    assert existing.status_code == missing.status_code == 403
    assert existing.json()["error"] == missing.json()["error"]
    assert context.tokens.get(ida_token_id).revoked_at is None
    assert call("DELETE", "/v1/tokens/0123456789ab", "ida").status_code == 404  # integration may look
    own = call("DELETE", f"/v1/tokens/{tokens['otto'].split('_')[1]}", "otto")
    assert own.status_code == 200 and own.json()["revoked_by"] == "otto"


def test_bad_tokens_are_refused_unexamined_past_the_limit_and_audited_once_per_burst(api):
    call, audit, context, tokens = api
    statuses = [call("GET", "/v1/me", token="vb2po_0123456789ab_" + "A" * 43).status_code for _ in range(8)]
    assert statuses == [401] * 3 + [429] * 5
    throttled = call("GET", "/v1/me", "ida")  # the address waits, whatever it presents
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert audit.entries == []  # the burst is not over yet
    context.audit_finished_bursts(everything=True)
    [entry] = audit.entries
    assert (entry.action, entry.outcome, entry.remote) == ("auth.failed", "unauthenticated", "127.0.0.1")
    assert entry.target["attempts"] == 9 and entry.target["refused"] == 3 and entry.target["throttled"] == 6
    assert entry.target["kinds"] == {"invalid": 3} and "9 failed sign-in(s)" in entry.detail


def test_a_burst_is_audited_when_the_address_has_been_quiet_and_the_bucket_refills():
    now = [0.0]
    limiter = FailedAuthLimiter(capacity=2, refill_per_s=0.5, quiet_s=10, clock=lambda: now[0])
    limiter.failed("10.0.0.1", "invalid")
    limiter.failed("10.0.0.1", "revoked", user="otto")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(2.0)
    assert limiter.retry_after("10.0.0.2") is None  # per address
    now[0] = 2.0
    assert limiter.retry_after("10.0.0.1") is None and limiter.finished_bursts() == []
    now[0] = 12.5
    [burst] = limiter.finished_bursts()
    assert (burst.refused, burst.throttled, burst.actors) == (2, 1, {"otto"})
    assert limiter.finished_bursts() == []

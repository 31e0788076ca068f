"""Access control of the admin API on the real stack: a running producer serving the API,
tokens and audit entries in the real broker, Visma over ODBC, PowerOffice in the sandbox.

Each action is tried by a user whose group grants its permission and by users whose groups
do not; tokens are tried missing, invalid, expired, revoked and orphaned; every request must
leave an audit entry; no answer, log line or metric may carry a secret.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_client import generate_latest
from requests.adapters import HTTPAdapter

from admin.api.audit import read_audit
from admin.api.throttle import FailedAuthLimiter
from devstack.visma_seed import create_tables, sqlite_connection_string
from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.operator_stack import ODBC_PASSWORD, USER_OF, Api, make_settings, operator_settings, run_cli, settings_file, token_for
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, sandbox_server, tmp_path_factory):
    """A producer with the admin API (no consumer: nothing here needs payments applied)."""
    tmp = tmp_path_factory.mktemp("admin-access")
    conn = sqlite_connection_string(tmp / "F0001.db")
    with VismaDatabase(conn) as db:
        create_tables(db)
    data = operator_settings(kafka_bootstrap, sandbox_server, {1: conn}, {1: SANDBOX_CLIENT_KEY})
    settings = make_settings(data)
    with running(settings, consumer=False) as services:
        # The bad-token tests here share one address: no limit in their way, bursts audited within a second.
        services["admin"].context.auth_limiter = FailedAuthLimiter(capacity=10_000, quiet_s=0.5)
        tokens = {user: token_for(settings, user) for user in ("ida", "otto", "frida", "alma", "nils")}
        yield {"settings": settings, "url": services["admin"].url, "tokens": tokens,
               "path": settings_file(tmp, data), "data": data, "context": services["admin"].context}


class SourceAddress(HTTPAdapter):
    """Requests sent from another loopback address, so a client address of its own."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def as_user(stack, user: str | None) -> Api:
    return Api(stack["url"], stack["tokens"][user] if user else None)


# (method, path, body, permission it needs, status when allowed)
ACTIONS = [
    ("GET", "/v1/config", None, "integration", 200),
    ("POST", "/v1/config/check", None, "integration", 200),
    ("PATCH", "/v1/config", {"set": {"lookback_date": "2025-06-01"}, "dry_run": True}, "integration", 200),
    ("GET", "/v1/status", None, "integration", 200),
    ("GET", "/v1/dead-letters", None, "integration", 200),
    ("POST", "/v1/dead-letters/redrive", {"all": True, "dry_run": True}, "integration", 200),
    ("POST", "/v1/replay", {"to_beginning": True, "dry_run": True}, "integration", 200),
    ("POST", "/v1/reconcile", {"client": "client-1"}, "integration", 202),
    ("GET", "/v1/tokens", None, "integration", 200),
    ("GET", "/v1/audit", None, "integration", 200),
    ("POST", "/v1/fetch", {"client": "client-1"}, "fetch.client", 200),
    ("POST", "/v1/fetch", {"all": True}, "fetch.all", 200),
]


@pytest.mark.parametrize("method, path, body, permission, allowed_status", ACTIONS,
                         ids=[f"{m} {p} {json.dumps(b) if b else ''}".strip() for m, p, b, *_ in ACTIONS])
def test_each_action_is_allowed_with_its_permission_and_denied_without_it(stack, method, path, body, permission,
                                                                          allowed_status):
    allowed = as_user(stack, USER_OF[permission]).call(method, path, json=body)
    assert allowed.status_code == allowed_status, allowed.text
    for user in ("ida", "otto", "frida", "nils"):
        if user == USER_OF[permission]:
            continue
        denied = as_user(stack, user).call(method, path, json=body)
        assert denied.status_code == 403, (user, denied.text)
        assert permission in denied.json()["error"]
    assert as_user(stack, "alma").call(method, path, json=body).status_code == allowed_status  # all three groups


def test_fetch_progress_needs_the_permission_the_fetch_needed_and_tells_no_one_else_it_exists(stack):
    fetch = as_user(stack, "otto").post("/v1/fetch", {"client": "client-1"}).json()
    assert as_user(stack, "otto").get(f"/v1/fetch/{fetch['fetch_id']}").status_code == 200
    assert as_user(stack, "frida").get(f"/v1/fetch/{fetch['fetch_id']}").status_code == 404  # fetch.all, not this one
    for user in ("ida", "nils"):  # no fetch permission: refused before the look-up, existing id or not
        assert as_user(stack, user).get(f"/v1/fetch/{fetch['fetch_id']}").status_code == 403
        assert as_user(stack, user).get("/v1/fetch/fetch-0000000000").status_code == 403


def test_revoking_someone_elses_token_is_refused_alike_whether_the_id_exists_or_not(stack):
    otto = as_user(stack, "otto")
    existing = otto.call("DELETE", f"/v1/tokens/{stack['tokens']['ida'].split('_')[1]}")
    missing = otto.call("DELETE", "/v1/tokens/0123456789ab")
    assert existing.status_code == missing.status_code == 403 and existing.json() == missing.json()
    assert as_user(stack, "ida").get("/v1/me").status_code == 200


def test_600_bad_tokens_from_one_address_are_cut_short_and_audited_as_one_burst(stack, monkeypatch):
    """Issue 15: 600 bad tokens went through in 3.6 s and wrote 601 audit records."""
    limiter = FailedAuthLimiter(quiet_s=2)  # the production limit; a short quiet period to end the burst
    monkeypatch.setattr(stack["context"], "auth_limiter", limiter)
    attacker = "127.0.0.7"  # loopback too: one address of its own
    session = requests.Session()
    session.mount("http://", SourceAddress(attacker))
    started = datetime.now(timezone.utc).isoformat()
    statuses = Counter()
    began = time.monotonic()
    for i in range(600):
        bad = f"vb2po_{i:012x}_" + "A" * 43
        statuses[session.get(stack["url"] + "/v1/me", headers={"Authorization": f"Bearer {bad}"},
                             timeout=10).status_code] += 1
    # the bucket's capacity, plus what it refilled meanwhile (one every 6 s: a slow machine gets one more)
    refilled = int((time.monotonic() - began) * limiter.refill_per_s)
    assert set(statuses) == {401, 429} and sum(statuses.values()) == 600
    assert limiter.capacity <= statuses[401] <= limiter.capacity + refilled
    assert as_user(stack, "ida").get("/v1/me").status_code == 200  # another address is not held up

    def from_attacker():
        return [e for e in read_audit(stack["settings"].kafka) if e.at >= started and e.remote == attacker]

    [entry] = wait_for(lambda: from_attacker() or None, timeout=30, what="the burst's audit record")
    assert (entry.action, entry.outcome) == ("auth.failed", "unauthenticated")
    assert entry.target["attempts"] == 600 and entry.target["throttled"] == statuses[429]
    assert wait_for(lambda: len(from_attacker()) == 1, timeout=5, what="no second record")


def test_a_request_without_a_token_is_refused(stack):
    answer = as_user(stack, None).get("/v1/status")
    assert answer.status_code == 401 and answer.json()["kind"] == "missing"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("presented", [
    "nonsense", "vb2po_0123456789ab_" + "A" * 43, "Basic YWxpY2U6c2VjcmV0",
], ids=["garbage", "unknown-id", "not-bearer"])
def test_an_invalid_token_is_refused(stack, presented):
    header = presented if presented.startswith("Basic") else f"Bearer {presented}"
    answer = Api(stack["url"], None).get("/v1/me", headers={"Authorization": header})
    assert answer.status_code == 401 and answer.json()["kind"] == "invalid"


def test_a_token_with_a_known_id_and_a_wrong_secret_is_refused(stack):
    real = stack["tokens"]["ida"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    answer = Api(stack["url"], forged).get("/v1/me")
    assert answer.status_code == 401 and answer.json()["kind"] == "invalid"


def test_an_expired_token_is_refused(stack):
    expired = token_for(stack["settings"], "ida", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    answer = Api(stack["url"], expired).get("/v1/status")
    assert answer.status_code == 401 and answer.json()["kind"] == "expired"


def test_a_revoked_token_is_refused_from_the_next_request_on(stack, capsys):
    token = token_for(stack["settings"], "ida")
    assert Api(stack["url"], token).get("/v1/me").status_code == 200
    token_id = token.split("_")[1]
    code, out, _ = run_cli(capsys, "--config", str(stack["path"]), "token", "revoke", token_id, "--local")
    assert code == 0 and "revoked" in out
    answer = Api(stack["url"], token).get("/v1/me")  # no waiting: the store reads the topic to its end first
    assert answer.status_code == 401 and answer.json()["kind"] == "revoked"


def test_a_token_of_a_user_no_longer_declared_is_refused(stack):
    orphan = token_for(stack["settings"], "former-employee")
    answer = Api(stack["url"], orphan).get("/v1/me")
    assert answer.status_code == 401 and answer.json()["kind"] == "unknown_user"


def test_tokens_are_issued_listed_and_revoked_through_the_commands(stack, capsys):
    url = ["--admin-url", stack["url"]]
    code, out, err = run_cli(capsys, "token", "create", "--user", "otto", "--ttl-days", "7", "--description", "laptop",
                             *url, "--token", stack["tokens"]["ida"])
    assert code == 0, err
    token = out.strip()
    assert token.startswith("vb2po_") and "shown once" in err
    code, out, _ = run_cli(capsys, "whoami", *url, "--token", token)
    assert code == 0 and "otto" in out and "fetch.client" in out
    code, out, _ = run_cli(capsys, "token", "list", *url, "--token", stack["tokens"]["ida"])
    assert code == 0 and token.split("_")[1] in out and "laptop" in out and token not in out
    # otto may revoke his own token, not someone else's
    code, _, err = run_cli(capsys, "token", "revoke", stack["tokens"]["ida"].split("_")[1], *url, "--token", token)
    assert code == 1 and "not allowed" in err
    code, out, _ = run_cli(capsys, "token", "revoke", token.split("_")[1], *url, "--token", token)
    assert code == 0 and "revoked" in out
    code, _, err = run_cli(capsys, "whoami", *url, "--token", token)
    assert code == 1 and "revoked" in err


def test_a_command_without_a_token_says_how_to_get_one(stack, capsys, monkeypatch):
    monkeypatch.delenv("VB2PO_TOKEN", raising=False)
    code, _, err = run_cli(capsys, "status", "--admin-url", stack["url"])
    assert code == 1 and "VB2PO_TOKEN" in err and "--local" in err


def test_every_request_is_audited_with_who_what_when_and_outcome(stack, caplog):
    caplog.set_level(logging.INFO, logger="vb2po.audit")
    started = datetime.now(timezone.utc).isoformat()
    as_user(stack, "otto").post("/v1/fetch", {"client": "client-1"})
    as_user(stack, "nils").post("/v1/fetch", {"all": True})
    anonymous = requests.Session()
    anonymous.mount("http://", SourceAddress("127.0.0.3"))  # its burst of failed authentications is its own
    anonymous.get(stack["url"] + "/v1/status", timeout=10)
    as_user(stack, "ida").get("/v1/dead-letters/9-999")

    def mine():
        return [e for e in read_audit(stack["settings"].kafka) if e.at >= started]

    entries = wait_for(lambda: len(mine()) >= 4 and mine(), timeout=30, what="four audit entries")
    summary = [(e.actor, e.action, e.target, e.outcome) for e in entries]
    assert ("otto", "fetch.client", "client-1", "ok") in summary
    assert ("nils", "fetch.all", "all", "denied") in summary
    assert ("ida", "dead_letters.show", "9-999", "not_found") in summary
    assert all(e.at and e.status for e in entries) and all(e.path for e in entries if e.action != "auth.failed")
    # the request without a token: in the audit record of its burst of failed authentications
    assert any((e.action, e.outcome, e.remote) == ("auth.failed", "unauthenticated", "127.0.0.3")
               and e.target["paths"] == {"/v1/status": 1} and e.target["kinds"] == {"missing": 1} for e in entries)
    logged = {(r.audit_actor, r.audit_action, r.audit_outcome) for r in caplog.records if r.name == "vb2po.audit"}
    assert logged >= {("otto", "fetch.client", "ok"), ("nils", "fetch.all", "denied")}


def test_no_response_log_line_or_metric_contains_a_secret(stack, capsys, caplog, sandbox_server):
    caplog.set_level(logging.DEBUG)
    settings = stack["settings"]
    secrets = [ODBC_PASSWORD, settings.companies[0].odbc.get_secret_value(), SANDBOX_CLIENT_KEY,
               sandbox_server.application_key, sandbox_server.subscription_key, *stack["tokens"].values()]
    ida = as_user(stack, "ida")
    answers = [
        ida.get("/v1/config"), ida.post("/v1/config/check"), ida.get("/v1/status"), ida.get("/v1/tokens"),
        ida.get("/v1/audit", params={"limit": 1000}), ida.get("/v1/dead-letters"), ida.get("/v1/me"),
        ida.post("/v1/replay", {"to_beginning": True}), ida.post("/v1/fetch", {"client": "nope"}),
        ida.post("/v1/fetch", {"unexpected": 1}), as_user(stack, "otto").post("/v1/fetch", {"client": "client-1"}),
        as_user(stack, "nils").get("/v1/config"), Api(stack["url"], "garbage").get("/v1/config"),
    ]
    shown = ida.get("/v1/config").json()
    assert shown["companies"][0]["odbc"] == "***" and shown["invoice_clients"][0]["client_key"] == "***"
    code, out, err = run_cli(capsys, "status", "--admin-url", stack["url"], "--token", stack["tokens"]["ida"])
    assert code == 0
    texts = [a.text for a in answers] + [out, err, generate_latest().decode(), caplog.text,
                                         *(r.getMessage() for r in caplog.records)]
    for text in texts:
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"secret(s) leaked: {[s[:6] + '...' for s in leaked]} in {text[:200]!r}"

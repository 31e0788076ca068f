"""Changing the integration settings through the admin API, over real HTTP with in-memory
fakes: only the integration permission may, a failed check changes nothing, a dry run changes
nothing, a concurrent change is refused, and every attempt is audited."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from admin.actions.config_check import FAIL, Finding
from admin.actions.producer_view import FakeProducer
from admin.actions.redact import Redactor
from admin.api.app import AdminContext, create_admin_app
from admin.api.audit import MemoryAuditLog
from admin.api.token_store import MemoryTokenStore
from admin.api.tokens import issue
from vb2po.http_server import BackgroundServer
from vb2po.integration_settings import Overrides
from vb2po.live_settings import LiveSettings, MemoryOverridesStore
from vb2po.settings import Settings

SETTINGS = Settings(
    lookback_date="2026-01-01",
    companies=[{"company_no": 1, "odbc": "Driver=SQLite3;Database=/nowhere/F0001.db;PWD=odbc-secret-1"}],
    invoice_clients=[{"name": "hovedkontor", "client_key": "client-key-secret"}],
    admin={"enabled": True, "groups": [{"name": "ops", "permissions": ["integration"]},
                                       {"name": "overview", "permissions": ["fetch.client", "fetch.all"]}],
           "users": [{"name": "ida", "groups": ["ops"]}, {"name": "otto", "groups": ["overview"]}]},
)


class Checks:
    """Stands in for the checks against Visma and PowerOffice; records what it was asked."""

    def __init__(self) -> None:
        self.fail_with: str | None = None
        self.asked: list[list[str]] = []

    def __call__(self, change) -> list[Finding]:
        self.asked.append([d.path for d in change.differences])
        if self.fail_with:
            return [Finding(FAIL, "visma company 1", self.fail_with, "choose another column")]
        return []


@pytest.fixture
def api():
    tokens_store, audit, now = MemoryTokenStore(), MemoryAuditLog(), datetime.now(timezone.utc)
    tokens = {}
    for user in ("ida", "otto"):
        issued = issue(user, created_by="test", now=now, ttl=timedelta(hours=1))
        tokens_store.put(issued.record)
        tokens[user] = issued.token
    live = LiveSettings(SETTINGS, MemoryOverridesStore())
    applied: list[Settings] = []
    live.subscribe(lambda settings, overrides: applied.append(settings))
    checks = Checks()
    context = AdminContext(SETTINGS, tokens_store, audit, FakeProducer(), Redactor.from_settings(SETTINGS), live=live,
                           verify_change=checks)
    with BackgroundServer(create_admin_app(context)) as server:
        def call(method, path, user=None, **kw):
            headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
            return requests.request(method, server.url + path, headers=headers, timeout=10, **kw)
        yield call, audit, live, applied, checks


def test_the_integration_permission_changes_a_setting_and_every_process_listener_gets_it(api):
    call, audit, live, applied, checks = api
    answer = call("PATCH", "/v1/config", "ida", json={"set": {"marker.field": "Gr5", "credit_block_sync": False}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 1 and not body["dry_run"]
    assert {(c["path"], c["before"], c["after"]) for c in body["changes"]} == {
        ("marker.field", "Gr4", "Gr5"), ("credit_block_sync", True, False)}
    assert any("no second voucher" in n for n in body["notes"])
    assert checks.asked == [["credit_block_sync", "marker.field"]]
    assert [(s.marker.field, s.credit_block_sync) for s in applied] == [("Gr5", False)]
    shown = call("GET", "/v1/config", "ida").json()
    assert shown["marker"]["field"] == "Gr5" and shown["credit_block_sync"] is False
    fields = {f["path"]: f for f in shown["changes"]["fields"]}
    assert fields["marker.field"] == {"path": "marker.field", "value": "Gr5", "file_value": "Gr4", "changed": True}
    assert fields["lookback_date"]["changed"] is False
    assert (shown["changes"]["version"], shown["changes"]["changed_by"]) == (1, "ida")
    entry = [e for e in audit.entries if e.action == "config.change"][-1]
    assert (entry.actor, entry.outcome) == ("ida", "ok") and "marker.field 'Gr4' -> 'Gr5'" in entry.detail


@pytest.mark.parametrize("user, status", [("otto", 403), (None, 401)])
def test_without_the_integration_permission_nothing_changes(api, user, status):
    call, audit, live, applied, _ = api
    answer = call("PATCH", "/v1/config", user, json={"set": {"integration_enabled": False}})
    assert answer.status_code == status
    assert live.store.current() == Overrides() and applied == []
    if status == 403:
        assert (audit.entries[-1].action, audit.entries[-1].outcome) == ("config.change", "denied")
    else:  # a failed authentication is audited with its burst, when the burst is over
        assert not any(e.path == "/v1/config" for e in audit.entries)


def test_a_change_that_fails_its_check_is_not_made_and_says_why(api):
    call, audit, live, applied, checks = api
    checks.fail_with = "marker.field 'Gr9' does not exist in CustTr"
    answer = call("PATCH", "/v1/config", "ida", json={"set": {"marker.field": "Gr9"}})
    assert answer.status_code == 400
    assert "the change was not made" in answer.json()["error"] and answer.json()["hint"] == "choose another column"
    assert live.store.current().version == 0 and applied == []
    assert audit.entries[-1].outcome == "invalid"


@pytest.mark.parametrize("change, named", [
    ({"marker.field": "DueDt"}, "marker.field"), ({"marker.field": "JNo"}, "marker.field"),
    ({"marker.value": 0}, "marker"), ({"marker.value": 10**30}, "marker.value"),
    ({"payment_rule.voucher_types": []}, "payment_rule.voucher_types"),
    ({"payment_rule.voucher_types": [10**30]}, "payment_rule.voucher_types"),
    ({"default_company_no": 10**30}, "default_company_no"), ({"lookback_date": "2026-02-30"}, "lookback_date"),
    ({"unmatched_payments": "post_anyway"}, "unmatched_payments"),
])
def test_a_change_that_could_hurt_is_refused_naming_the_key(api, change, named):
    call, audit, live, applied, checks = api
    answer = call("PATCH", "/v1/config", "ida", json={"set": change})
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]
    assert live.store.current().version == 0 and applied == []


def test_a_dry_run_shows_the_change_and_its_checks_but_makes_nothing(api):
    call, _, live, applied, checks = api
    body = call("PATCH", "/v1/config", "ida", json={"set": {"lookback_date": "2025-06-01"}, "dry_run": True}).json()
    assert body["dry_run"] and body["version"] == 0
    assert body["changes"] == [{"path": "lookback_date", "before": "2026-01-01", "after": "2025-06-01"}]
    assert checks.asked == [["lookback_date"]] and live.store.current().version == 0 and applied == []


def test_a_change_made_meanwhile_by_someone_else_is_not_overwritten(api):
    call, _, live, _, _ = api
    assert call("PATCH", "/v1/config", "ida", json={"set": {"lookback_date": "2026-02-01"}}).status_code == 200
    stale = call("PATCH", "/v1/config", "ida", json={"set": {"lookback_date": "2026-03-01"}, "expected_version": 0})
    assert stale.status_code == 409 and "version 1" in stale.json()["error"]
    assert live.settings.lookback_date.isoformat() == "2026-02-01"


@pytest.mark.parametrize("body, message", [
    ({"set": {"invoice_clients.hovedkontor.client_key": "x"}}, "cannot be changed here"),
    ({"set": {"poweroffice.api_url": "http://elsewhere"}}, "cannot be changed through the admin API"),
    ({"set": {}}, "nothing to change"),
    ({"set": {"lookback_date": "soon"}}, "lookback_date"),
])
def test_invalid_changes_are_refused_without_a_check(api, body, message):
    call, _, live, _, checks = api
    answer = call("PATCH", "/v1/config", "ida", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert checks.asked == [] and live.store.current().version == 0


def test_a_reset_goes_back_to_the_files_value(api):
    call, _, live, applied, _ = api
    call("PATCH", "/v1/config", "ida", json={"set": {"integration_enabled": False}})
    body = call("PATCH", "/v1/config", "ida", json={"reset": ["integration_enabled"]}).json()
    assert body["version"] == 2 and body["changes"] == [{"path": "integration_enabled", "before": False, "after": True}]
    assert live.store.current().values == {} and [s.integration_enabled for s in applied] == [False, True]


def test_an_override_the_file_no_longer_fits_is_shown_left_out_and_can_be_reset():
    tokens_store = MemoryTokenStore()
    issued = issue("ida", created_by="test", now=datetime.now(timezone.utc), ttl=timedelta(hours=1))
    tokens_store.put(issued.record)
    stale = Overrides(1, {"invoice_clients.gone.bank_account": 1930, "credit_block_sync": False}, "kari",
                      "2026-11-01T08:00:00+00:00")
    live = LiveSettings(SETTINGS, MemoryOverridesStore(stale))
    live.refresh()
    assert live.settings.credit_block_sync is False  # what fits is applied
    context = AdminContext(live.settings, tokens_store, MemoryAuditLog(), FakeProducer(), Redactor.from_settings(SETTINGS),
                           live=live, verify_change=Checks())
    with BackgroundServer(create_admin_app(context)) as server:
        headers = {"Authorization": f"Bearer {issued.token}"}
        shown = requests.get(server.url + "/v1/config", headers=headers, timeout=10).json()["changes"]
        assert [p.split(":")[0] for p in shown["left_out"]] == ["invoice_clients.gone.bank_account"]
        reset = requests.patch(server.url + "/v1/config", headers=headers, timeout=10,
                               json={"reset": ["invoice_clients.gone.bank_account"]}).json()
    assert reset["version"] == 2 and reset["changes"] == []
    assert live.store.current().values == {"credit_block_sync": False} and live.stale() == ()


def test_a_settings_topic_that_stops_answering_is_logged_once_per_outage_and_followed_again(caplog):
    class Flaky(MemoryOverridesStore):
        failing = False

        def current(self):
            if self.failing:
                raise TimeoutError("broker away")
            return super().current()

    store = Flaky()
    live = LiveSettings(SETTINGS, store, interval_s=0.01).start()
    try:
        with caplog.at_level("INFO", logger="vb2po.live_settings"):
            store.failing = True
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any("could not read" in r.message for r in caplog.records):
                time.sleep(0.01)
            time.sleep(0.2)  # twenty rounds while failing
            store.put(Overrides(1, {"credit_block_sync": False}, "ida", "2026-11-27T12:00:00+00:00"))
            store.failing = False
            while time.monotonic() < deadline and live.overrides.version != 1:
                time.sleep(0.01)
    finally:
        live.close()
    assert live.settings.credit_block_sync is False
    messages = [r.message for r in caplog.records]
    assert sum("could not read the settings topic" in m for m in messages) == 1
    assert any("answers again" in m for m in messages)

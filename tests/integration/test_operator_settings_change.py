"""Changing the integration settings while vb2po runs, the way an operator does it: `vb2po
config set` against the running producer (admin API) and consumer, real broker, Visma over
ODBC (SQLite), the PowerOffice sandbox. The outcome that matters: the new settings take effect
in both processes, nothing is registered twice, and a change that cannot work is refused."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from consumer.payments import external_import_reference
from devstack.dataset import DatasetSpec, invoices
from devstack.visma_seed import create_tables, insert_custtr, sqlite_connection_string
from sandbox.seed import gl_account_id
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from tests.builders import payment_row
from tests.operator_stack import Api, make_settings, operator_settings, run_cli, settings_file, token_for
from tests.services import running, wait_for
from vb2po import metrics
from vb2po.live_settings import follow_settings
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration

SPEC = DatasetSpec(size=60, seed=21)
CLIENT_KEY = "settings-client"


@pytest.fixture(scope="module")
def settings_sandbox():
    with SandboxServer([ClientSeed(CLIENT_KEY, SPEC)], SandboxConfig(rate_limit_per_second=None)) as sandbox:
        # A PowerOffice that accepts a second voucher with the same reference: "no second voucher"
        # after a marker change must come from vb2po's own look-up.
        sandbox.control.set_unique_references(False)
        yield sandbox


@pytest.fixture
def stack(kafka_bootstrap, settings_sandbox, tmp_path):
    db = sqlite_connection_string(tmp_path / "F0001.db")
    with VismaDatabase(db) as visma:
        create_tables(visma)
    # Sweep grace 0: a payment left unmarked by a marker change is swept as soon as the sweep runs.
    data = operator_settings(kafka_bootstrap, settings_sandbox, {1: db}, {1: CLIENT_KEY}, producer={"sweep_grace_s": 0})
    settings = make_settings(data)
    with running(settings) as services:
        url = services["admin"].url
        tokens = {u: token_for(settings, u) for u in ("ida", "otto", "frida")}
        yield {"settings": settings, "url": url, "tokens": tokens, "db": db, "sandbox": settings_sandbox,
               "unpaid": iter([i for i in invoices(SPEC) if i.balance_before_sync > 0]), "services": services,
               "file": settings_file(tmp_path, data)}


_next_jno = iter(range(7000, 10**6))


def pay(stack) -> tuple[int, int]:
    invoice = next(stack["unpaid"])
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=5)
    day = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    jno = next(_next_jno)
    with VismaDatabase(stack["db"]) as db:
        insert_custtr(db, [payment_row(jno, 1, ch_dt=day, ch_tmms=ms, vo_dt=day, amount="-40.00",
                                       cust_no=invoice.cust_no, invoice_no=str(invoice.invoice_no))])
    return jno, 1


def markers(stack, key: tuple[int, int]) -> tuple:
    with VismaDatabase(stack["db"]) as db:
        return tuple(db.query('SELECT "Gr4", "Gr3" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', list(key)))[0]


def vouchers(stack, key: tuple[int, int]) -> list[dict]:
    return stack["sandbox"].control.vouchers_with_reference(CLIENT_KEY, external_import_reference(1, *key))


def config(capsys, stack, user: str, *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "config", *args, "--admin-url", stack["url"], "--token", stack["tokens"][user])


def test_a_new_marker_field_and_bank_account_take_effect_in_both_processes_without_a_second_voucher(stack, capsys):
    before = pay(stack)
    wait_for(lambda: markers(stack, before)[0] == 1, timeout=60, what="the first payment marked in Gr4")

    code, out, err = config(capsys, stack, "ida", "set", "marker.field=Gr3", "invoice_clients.client-1.bank_account=1950")
    assert code == 0, out + err
    assert "changed (settings version 1)" in out and 'marker.field: "Gr4" -> "Gr3"' in out
    assert "no second voucher" in out
    assert metrics.SETTINGS_VERSION._value.get() == 1

    after = pay(stack)
    wait_for(lambda: markers(stack, after)[1] == 1, timeout=60, what="the new payment marked in Gr3")
    assert markers(stack, after)[0] is None or markers(stack, after)[0] == 0  # not in the old field
    [voucher] = vouchers(stack, after)
    assert gl_account_id(1950) in {line["AccountId"] for line in voucher["VoucherLines"]}  # the new bank account

    # The payment marked the old way is swept, found registered already, and marked the new way.
    wait_for(lambda: markers(stack, before)[1] == 1, timeout=60, what="the older payment marked in Gr3 too")
    assert len(vouchers(stack, before)) == 1 and len(vouchers(stack, after)) == 1

    # `config show` tells where each value comes from; a restart starts from the changed settings.
    code, out, _ = config(capsys, stack, "ida", "show")
    assert code == 0 and "changed through the admin API: version 1, by ida" in out
    assert any(line.split()[:2] == ["marker.field", '"Gr3"'] and 'changed (the file has "Gr4")' in line
               for line in out.splitlines())
    restarted = follow_settings(stack["settings"])
    try:
        assert restarted.settings.marker.field == "Gr3"
        assert restarted.settings.client("client-1").bank_account == 1950
    finally:
        restarted.close()
    # `config check` from the file checks what the services run with: the file plus the change.
    code, out, _ = run_cli(capsys, "--config", str(stack["file"]), "config", "check")
    assert code == 0, out
    assert "with the changes made through the admin API (version 1 by ida" in out and "marker column Gr3" in out


def test_switching_the_integration_off_stops_fetching_until_it_is_switched_on_again(stack, capsys):
    code, out, err = config(capsys, stack, "ida", "set", "integration_enabled=false")
    assert code == 0 and "producer stops reading Visma" in out, out + err
    api = Api(stack["url"], stack["tokens"]["ida"])
    wait_for(lambda: api.get("/v1/status").json()["integration_enabled"] is False, timeout=30, what="status to say off")
    refused = Api(stack["url"], stack["tokens"]["otto"]).post("/v1/fetch", {"client": "client-1"})
    assert refused.status_code == 409 and "config set integration_enabled=true" in refused.json()["hint"]
    waiting = pay(stack)

    code, out, err = config(capsys, stack, "ida", "reset", "integration_enabled")
    assert code == 0 and "integration switched on" in out, out + err
    wait_for(lambda: markers(stack, waiting)[0] == 1, timeout=60, what="the payment made while off, once on again")
    assert len(vouchers(stack, waiting)) == 1


def test_changes_that_cannot_work_are_refused_with_the_reason_and_change_nothing(stack, capsys):
    code, _, err = config(capsys, stack, "ida", "set", "marker.field=JNo")
    assert code == 1 and "marker.field" in err and "not one of Visma's free fields" in err
    code, _, err = config(capsys, stack, "ida", "set", "marker.field=Gr9")  # a free field this CustTr lacks
    assert code == 1 and "the change was not made" in err and "Gr9" in err
    code, _, err = config(capsys, stack, "ida", "set", "payment_rule.voucher_types=[]")
    assert code == 1 and "payment_rule.voucher_types" in err
    code, _, err = config(capsys, stack, "ida", "set", "lookback_date=2026-02-30")
    assert code == 1 and "lookback_date" in err and "Traceback" not in err
    code, _, err = config(capsys, stack, "ida", "set", "invoice_clients.client-1.bank_account=4242")
    assert code == 1 and "4242" in err
    code, _, err = config(capsys, stack, "ida", "set", "invoice_clients.client-1.client_key=abc")
    assert code == 1 and "cannot be changed here" in err
    for user in ("otto", "frida"):  # the fetch permissions do not reach the settings
        code, _, err = config(capsys, stack, user, "set", "credit_block_sync=false")
        assert code == 1 and "not allowed" in err
    code, out, _ = config(capsys, stack, "ida", "set", "lookback_date=2025-01-01", "--dry-run")
    assert code == 0 and "would change (dry run)" in out
    stale = Api(stack["url"], stack["tokens"]["ida"]).call(
        "PATCH", "/v1/config", json={"set": {"credit_block_sync": False}, "expected_version": 7})
    assert stale.status_code == 409 and "version 0" in stale.json()["error"]  # someone else's change is not overwritten
    settings_now = Api(stack["url"], stack["tokens"]["ida"]).get("/v1/config").json()
    assert settings_now["changes"]["version"] == 0 and settings_now["marker"]["field"] == "Gr4"
    assert settings_now["lookback_date"] == "2026-01-01"
    # The settings themselves never leave with a secret in them.
    assert stack["settings"].client("client-1").client_key.get_secret_value() not in str(settings_now)

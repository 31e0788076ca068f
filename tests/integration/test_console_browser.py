"""The admin console in a real headless Chromium, on the real stack: a producer serving the
admin API and console, a consumer, Kafka, two Visma companies over ODBC (SQLite), two
PowerOffice clients in the sandbox.

One person per group of the seed (integration, fetch.client, fetch.all), one limited to one
invoice client, one without any permission. Each sees and can do exactly their own actions,
and the server refuses what the page does not offer. The run saves screenshots of the overview
and the fetch page in both languages (into docs/screenshots/, which the README shows, when run with
VB2PO_SCREENSHOTS=docs/screenshots).
"""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from consumer.payments import external_import_reference
from devstack.dataset import DatasetSpec, invoices
from devstack.visma_seed import create_tables, insert_actors, insert_custtr, sqlite_connection_string
from sandbox.server import SandboxServer
from sandbox.state import ClientSeed, SandboxConfig
from tests.builders import payment_row
from tests.console_browser import Console, text_of
from tests.operator_stack import GROUPS, USERS, Api, make_settings, operator_settings, run_cli, token_for
from tests.services import running, wait_for
from vb2po.visma.db import VismaDatabase

pytestmark = pytest.mark.integration

SPECS = {1: DatasetSpec(size=200, seed=21, blocked_share=0.3), 2: DatasetSpec(size=200, seed=22, blocked_share=0.3)}
CLIENT_KEYS = {1: "console-client-a", 2: "console-client-b"}
# The seed's groups; olga may fetch for client-1 only.
CONSOLE_USERS = [*USERS, {"name": "olga", "groups": ["invoice-overview"], "clients": ["client-1"]}]
NAV = {  # what each person's menu offers, in Norwegian
    "ida": ["Oversikt", "Feilede overføringer", "Innstillinger", "Avstemming", "Revisjonslogg"],
    "otto": ["Oversikt", "Hent innbetalinger"],
    "frida": ["Oversikt", "Hent innbetalinger"],
    "olga": ["Oversikt", "Hent innbetalinger"],
    "nils": [],
}
INTEGRATION_PAGES = ["/console/dead-letters", "/console/settings", "/console/reconcile", "/console/audit"]


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    seeds = [ClientSeed(CLIENT_KEYS[n], spec) for n, spec in SPECS.items()]
    with SandboxServer(seeds, SandboxConfig(rate_limit_per_second=None)) as sandbox:
        dbs = {}
        for n, spec in SPECS.items():
            dbs[n] = sqlite_connection_string(tmp / f"F000{n}.db")
            with VismaDatabase(dbs[n]) as db:
                create_tables(db)
                insert_actors(db, spec)  # customers, some with a credit block
        data = operator_settings(kafka_bootstrap, sandbox, dbs, CLIENT_KEYS, producer={"poll_interval_s": 3600},
                                 admin={"groups": GROUPS, "users": CONSOLE_USERS})
        settings = make_settings(data)
        with running(settings) as services:
            url = services["admin"].url
            tokens = {u["name"]: token_for(settings, u["name"]) for u in CONSOLE_USERS}
            # The producer polls every company once at start; after that only fetch now does.
            wait_for(lambda: all(c["last_poll_at"] for c in Api(url, tokens["ida"]).get("/v1/status").json()["companies"]),
                     timeout=60, what="the producer's first round")
            unpaid = {n: iter([i for i in invoices(spec) if i.balance_before_sync > 0]) for n, spec in SPECS.items()}
            yield {"settings": settings, "url": url, "tokens": tokens, "dbs": dbs, "sandbox": sandbox, "unpaid": unpaid}


@pytest.fixture
def console(chromium, stack) -> Console:
    return Console(chromium, stack["url"])


_next_jno = iter(range(7000, 10**6))


def pay(stack, company_no: int, *, amount: str = "-1234.50", invoice_no: str | None = None) -> tuple[int, int]:
    """A payment row in Visma company `company_no` against an unpaid invoice, changed a few seconds ago."""
    invoice = next(stack["unpaid"][company_no])
    now = datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(seconds=5)
    day = now.year * 10000 + now.month * 100 + now.day
    ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000
    jno = next(_next_jno)
    row = payment_row(jno, 1, ch_dt=day, ch_tmms=ms, vo_dt=day, amount=amount, cust_no=invoice.cust_no,
                      invoice_no=invoice_no or str(invoice.invoice_no))
    with VismaDatabase(stack["dbs"][company_no]) as db:
        insert_custtr(db, [row])
    return jno, 1


def registered(stack, company_no: int, key: tuple[int, int]) -> bool:
    """Marked in Visma and exactly one voucher in PowerOffice."""
    with VismaDatabase(stack["dbs"][company_no]) as db:
        [(marker,)] = list(db.query('SELECT "Gr4" FROM "CustTr" WHERE "JNo" = ? AND "EntNo" = ?', list(key)))
    reference = external_import_reference(company_no, *key)
    vouchers = stack["sandbox"].control.vouchers_with_reference(CLIENT_KEYS[company_no], reference)
    return marker == 1 and len(vouchers) == 1


def card(console: Console, client: str):
    return console.find(f'section.card[data-client="{client}"]')


def card_field(console: Console, client: str, field: str) -> str:
    return text_of(card(console, client).find_element("css selector", f'[data-field="{field}"]'))


def payments_today(console: Console, client: str) -> int:
    found = re.match(r"(\d+) innbetaling", card_field(console, client, "today"))
    return int(found.group(1)) if found else 0


# -- signing in and out ------------------------------------------------------------------------
def test_a_sign_in_link_from_token_create_signs_in_and_the_token_stays_out_of_url_history_and_page(
        stack, console, capsys):
    code, out, err = run_cli(capsys, "token", "create", "--user", "otto", "--admin-url", stack["url"],
                             "--token", stack["tokens"]["ida"])
    assert code == 0, err
    token = out.strip()
    [link] = re.findall(r"http://\S+/console/sign-in#token=\S+", err)
    assert link.endswith("#token=" + token)
    console.sign_in_with_link(link)
    assert console.path() == "/console/" and console.h1() == "Oversikt"
    history = console.driver.execute_script("return [location.href, document.documentElement.outerHTML, document.cookie]")
    assert all(token not in part for part in history)  # not in the URL, the page, nor readable cookies
    session = console.driver.get_cookie("vb2po_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert session.get("expiry") and session["expiry"] <= (datetime.now() + timedelta(hours=8, minutes=1)).timestamp()
    console.driver.back()  # what the history holds before the console: not the link (replaced, then left)
    console.wait(lambda: console.driver.current_url != stack["url"] + "/console/", what="going back")
    assert token not in console.driver.current_url


def test_a_wrong_token_is_refused_on_the_sign_in_page_and_says_so_without_showing_it(stack, console):
    console.sign_out_if_signed_in()
    console.open("/console/sign-in")
    wrong = "vb2po_0123456789ab_" + "B" * 43
    console.find("#token").send_keys(wrong)
    console.find("#sign-in button[type=submit]").click()
    problem = console.wait(lambda: console.all("#sign-in-problem"), what="the refusal")[0]
    assert "Innloggingen mislyktes" in problem.text
    assert wrong not in console.driver.page_source and console.find("#token").get_attribute("value") == ""
    assert console.find("#token").get_attribute("aria-invalid") == "true"


def test_sign_out_ends_the_session_on_the_server(stack, console):
    console.sign_in(stack["tokens"]["ida"])
    cookie = console.driver.get_cookie("vb2po_session")["value"]
    assert requests.get(stack["url"] + "/console/", cookies={"vb2po_session": cookie}, allow_redirects=False,
                        timeout=10).status_code == 200
    console.find("form.sign-out button").click()
    console.wait(lambda: "Du er logget ut" in console.driver.page_source, what="the signed-out page")
    console.open("/console/settings")
    console.wait(lambda: console.path().startswith("/console/sign-in"), what="the sign-in page")
    answer = requests.get(stack["url"] + "/console/", cookies={"vb2po_session": cookie}, allow_redirects=False,
                          timeout=10)  # the old cookie, replayed: the session is gone on the server
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")


# -- each group: exactly its own actions -----------------------------------------------------------
@pytest.mark.parametrize("user", ["ida", "otto", "frida", "olga", "nils"])
def test_each_group_sees_exactly_its_own_pages_and_the_server_refuses_the_others(stack, console, user):
    console.sign_in(stack["tokens"][user])
    assert console.nav() == NAV[user]
    if user == "nils":
        assert "ingen av tilgangene" in console.find("main").text
    for page in INTEGRATION_PAGES:
        console.open(page)
        if user == "ida":
            assert console.h1() != "Du har ikke tilgang til dette." and not console.unlabelled_controls(), page
        else:
            assert console.h1() == "Du har ikke tilgang til dette.", page
    console.open("/console/fetch")
    if user in ("ida", "nils"):
        assert console.h1() == "Du har ikke tilgang til dette."
        return
    assert console.h1() == "Hent innbetalinger fra Visma Business" and not console.unlabelled_controls()
    one = [o.get_attribute("value") for o in console.all("#client option")]
    assert one == {"otto": ["client-1", "client-2"], "frida": [], "olga": ["client-1"]}[user]
    assert bool(console.all("#fetch-all")) == (user == "frida")
    if user != "frida":  # fetch.all is not offered, and a forged form is refused by the server
        console.post_as_page("/console/fetch", {"all": "1"})
        console.wait(lambda: console.h1() == "Du har ikke tilgang til dette.", what="the refusal")
        assert "fetch.all" in console.find("main").text


def test_a_user_granted_one_client_sees_only_it_and_cannot_fetch_for_another(stack, console, capsys):
    console.sign_in(stack["tokens"]["olga"])
    assert [c.get_attribute("data-client") for c in console.all("section.card")] == ["client-1"]
    console.open("/console/fetch")
    console.post_as_page("/console/fetch", {"client": "client-2"})
    console.wait(lambda: console.h1() == "Du har ikke tilgang til dette.", what="the refusal")
    assert "client-1" in console.find("main").text
    # the same rule on the API and the command (they share it)
    refused = Api(stack["url"], stack["tokens"]["olga"]).post("/v1/fetch", {"client": "client-2"})
    assert refused.status_code == 403
    code, _, err = run_cli(capsys, "fetch-now", "--client", "client-2", "--admin-url", stack["url"],
                           "--token", stack["tokens"]["olga"])
    assert code == 1 and "not allowed" in err and "client-1" in err


# -- fetching --------------------------------------------------------------------------------------
def test_a_fetch_for_one_client_registers_its_payments_and_the_pages_show_it(stack, console):
    console.sign_in(stack["tokens"]["otto"])
    before = payments_today(console, "client-1")
    mine = [pay(stack, 1), pay(stack, 1, amount="-250.00")]
    other = pay(stack, 2)
    console.find('section.card[data-client="client-1"] a.button').click()  # from the invoice overview
    assert console.path() == "/console/fetch?client=client-1"
    assert console.find("#client option:checked").get_attribute("value") == "client-1"
    console.find("#fetch-client").click()
    result = console.wait(lambda: console.all("#fetch-result"), timeout=90, what="the fetch's result")[0]
    assert text_of(result).startswith("Ferdig: 2 av 2 innbetalinger er registrert i PowerOffice")
    assert "client-1 (Visma-firma 1): 2 innbetalinger hentet" in text_of(console.find("#fetch-companies"))
    assert all(registered(stack, 1, key) for key in mine)
    assert not registered(stack, 2, other)  # another client's payment: not fetched
    console.screenshot("fetch-nb")
    console.open("/console/")
    console.wait(lambda: payments_today(console, "client-1") == before + 2 or console.driver.refresh(),
                 timeout=30, what="the overview to count the two payments")
    if before == 0:  # amounts the Norwegian way: 1 234,50 + 250,00
        assert card_field(console, "client-1", "today") == "2 innbetalinger, 1 484,50 kr"
    console.screenshot("overview-nb")
    console.open("/console/?lang=en")  # the switch, remembered
    assert console.h1() == "Overview" and console.find("html").get_attribute("lang") == "en"
    console.screenshot("overview-en")
    console.open("/console/fetch?client=client-1")
    assert console.h1() == "Fetch payments from Visma Business"
    console.screenshot("fetch-en")
    console.open("/console/?lang=nb")


def test_fetch_for_all_clients_can_be_done_with_the_keyboard_alone_and_follows_a_failed_payment(stack, console):
    from selenium.webdriver.common.keys import Keys

    console.sign_in(stack["tokens"]["frida"])
    good, bad = pay(stack, 1), pay(stack, 2, invoice_no="999999")  # PowerOffice knows no such invoice
    console.open("/console/fetch")
    body = console.find("body")
    body.send_keys(Keys.TAB)
    assert console.driver.switch_to.active_element.get_attribute("class") == "skip"  # the first stop
    for _ in range(30):
        if console.driver.switch_to.active_element.get_attribute("id") == "fetch-all":
            break
        console.driver.switch_to.active_element.send_keys(Keys.TAB)
    assert console.driver.switch_to.active_element.get_attribute("id") == "fetch-all"
    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    result = console.wait(lambda: console.all("#fetch-result"), timeout=90, what="the fetch's result")[0]
    # (a payment left in company 2 by an earlier test is fetched too: "all" is every client)
    assert re.match(r"Ferdig: \d+ av \d+ innbetalinger", text_of(result)) and "1 kunne ikke registreres" in text_of(result)
    assert "PowerOffice kjenner ikke fakturaen" in console.find("#fetch-progress").text
    assert registered(stack, 1, good) and not registered(stack, 2, bad)


# -- the integration group's work ------------------------------------------------------------------
def test_integration_sees_a_failed_transfer_in_plain_words_with_details_and_sends_it_again(stack, console):
    frida = Api(stack["url"], stack["tokens"]["frida"])
    key = pay(stack, 2, invoice_no="999998")
    fetch = frida.post("/v1/fetch", {"all": True}).json()
    wait_for(lambda: frida.get(f"/v1/fetch/{fetch['fetch_id']}").json()["progress"]["dead_lettered"] >= 1,
             timeout=90, what="the payment to be dead-lettered")
    console.sign_in(stack["tokens"]["ida"])
    console.open("/console/dead-letters")
    rows = [r for r in console.all("tr[data-letter]") if f"JNo={key[0]};" in r.text]
    assert rows and "PowerOffice kjenner ikke fakturaen" in rows[0].text and "client-2" in rows[0].text
    letter_id = rows[0].get_attribute("data-letter")
    rows[0].find_element("css selector", "a").click()
    assert "Hva gjør jeg?" in console.find("main").text and "Sjekk fakturanummeret" in console.find("main").text
    console.find("#redrive").click()
    notice = console.wait(lambda: console.all(".notice.ok"), what="the redrive notice")[0]
    assert notice.text == "1 sendt på nytt."
    assert "Sendt på nytt av ida" in console.find("dl.facts").text
    audit = [e for e in Api(stack["url"], stack["tokens"]["ida"]).get("/v1/audit", params={"limit": 200}).json()
             if e["action"] == "dead_letters.redrive"]
    assert audit[-1]["actor"] == "ida" and audit[-1]["target"] == [letter_id] and audit[-1]["outcome"] == "ok"


def test_integration_checks_a_setting_change_before_saving_it(stack, console):
    console.sign_in(stack["tokens"]["ida"])
    console.open("/console/settings")
    field = console.find('input[name="v:lookback_date"]')
    console.driver.execute_script("arguments[0].value = '2025-12-01'", field)
    console.find("#check-change").click()
    preview = console.wait(lambda: console.all("#preview"), what="the checked change")[0]
    assert "lookback_date" in preview.text and "2025-12-01" in preview.text
    assert stack["settings"].lookback_date.isoformat() in preview.text  # before -> after
    assert Api(stack["url"], stack["tokens"]["ida"]).get("/v1/config").json()["lookback_date"] != "2025-12-01"
    console.find("#save-change").click()
    notice = console.wait(lambda: console.all(".notice.ok"), what="the saved notice")[0]
    assert notice.text.startswith("Endringen er lagret")
    assert Api(stack["url"], stack["tokens"]["ida"]).get("/v1/config").json()["lookback_date"] == "2025-12-01"
    # a value the check refuses is not saved, and the page says why
    console.driver.execute_script("arguments[0].value = 'JNo'", console.find('input[name="v:marker.field"]'))
    console.find("#check-change").click()
    problem = console.wait(lambda: console.all("#settings-problem"), what="the refusal")[0]
    assert "Endringen ble ikke gjort" in problem.text
    assert Api(stack["url"], stack["tokens"]["ida"]).get("/v1/config").json()["marker"]["field"] == "Gr4"


def test_integration_runs_a_reconcile_and_downloads_the_report_as_csv(stack, console):
    console.sign_in(stack["tokens"]["ida"])
    console.open("/console/reconcile")
    console.choose("#reconcile-client", "client-1")
    console.find("#start-reconcile").click()
    link = console.wait(lambda: console.all("#csv"), timeout=120, what="the finished report")[0]
    assert "fakturaer sammenlignet" in console.find("main").text
    cookie = console.driver.get_cookie("vb2po_session")["value"]
    answer = requests.get(link.get_attribute("href"), cookies={"vb2po_session": cookie}, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(csv.reader(io.StringIO(answer.text)))[0][:4] == ["client", "invoice_no", "customer_no", "kind"]
    assert all(r["client"] == "client-1" for r in rows)
    console.open("/console/")  # the overview shows the last reconcile
    assert "åpne avvik" in card_field(console, "client-1", "reconcile")


def test_integration_reads_the_audit_log_with_who_did_what(stack, console):
    console.sign_in(stack["tokens"]["ida"])
    console.open("/console/audit?actor=ida")
    table = console.wait(lambda: console.all("table tbody tr"), what="audit entries")
    texts = [r.text for r in table]
    assert any("console.sign_in" in t for t in texts) and all("ida" in t for t in texts)
    assert console.find("#actor").get_attribute("value") == "ida"


# -- language and format ------------------------------------------------------------------------
def test_english_follows_the_browsers_language_and_norwegian_is_the_default(stack):
    def sign_in_page(**headers):
        return requests.get(stack["url"] + "/console/sign-in", headers=headers, timeout=10).text

    assert '<html lang="nb">' in sign_in_page() and "Logg inn" in sign_in_page()
    assert '<html lang="en">' in sign_in_page(**{"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="nb">' in sign_in_page(**{"Accept-Language": "nn-NO,en;q=0.5"})
    assert '<html lang="nb">' in sign_in_page(**{"Accept-Language": "de-DE"})


def test_console_pages_load_nothing_from_elsewhere_and_forbid_framing(stack, console):
    console.sign_in(stack["tokens"]["ida"])
    external = console.driver.execute_script("""
        return [...document.querySelectorAll('[src], [href]')]
            .map(el => el.getAttribute('src') || el.getAttribute('href'))
            .filter(u => /^(https?:)?\\/\\//.test(u));""")
    assert external == []
    answer = requests.get(stack["url"] + "/console/sign-in", timeout=10)
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store" and answer.headers["x-content-type-options"] == "nosniff"

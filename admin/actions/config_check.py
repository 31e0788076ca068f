"""`vb2po config check`: validate the settings and test every connection they describe.

Each check yields findings (ok / warn / fail) that say what is wrong and how to fix it:
the settings themselves; Kafka; each Visma company over ODBC, with the processed-marker
column checked against the live CustTr table (a plain identifier, present, not a key or change
column, not a column vb2po reads, of a type that holds the marker value); PowerOffice for each
invoice client (a token, then a cheap call, then the bank account). No secret is ever part
of a finding: every message goes through the redactor as well.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import date
from typing import Iterable

import pyodbc
from pydantic import ValidationError

from admin.actions.redact import Redactor
from vb2po.errors import TerminalError, TransientError
from vb2po.settings import CompanySettings, InvoiceClientSettings, Settings
from vb2po.visma.company import currency_columns
from vb2po.visma.db import classify_db_error
from vb2po.visma.dialect import DialectName, dialect_for, guess_dialect, require_plain_identifier
from vb2po.visma.identifiers import ColumnNotUsable, change_time_column, checked_marker_column
from vb2po.visma.queries import PAYMENT_COLUMNS

OK, WARN, FAIL = "ok", "warn", "fail"
_INTEGER_NAMES = ("INT", "INTEGER", "SMALLINT", "TINYINT", "BIGINT")
_DECIMAL_NAMES = ("DECIMAL", "NUMERIC")
_TEXT_NAMES = ("CHAR", "VARCHAR", "NCHAR", "NVARCHAR", "TEXT", "NTEXT", "CHARACTER")
_SQL_INTEGER, _SQL_DECIMAL, _SQL_TEXT = {4, 5, -6, -5}, {2, 3}, {1, 12, -1, -8, -9, -10}
ACTOR_COLUMNS = ("ActNo", "CustNo", "CrSusp", "CrLmt", "ChDt", "ChTm")


@dataclass(frozen=True)
class Finding:
    level: str
    subject: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return {"level": self.level, "subject": self.subject, "message": self.message, "fix": self.fix}


# -- the settings themselves ---------------------------------------------------------------
def settings_errors(exc: ValidationError) -> list[Finding]:
    """One finding per validation error, without the offending input (it may be a secret)."""
    findings = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        findings.append(Finding(FAIL, "settings", f"{where}: {error.get('msg')}",
                                "see settings.example.yaml for every key, its meaning and an example"))
    return findings


def check_settings(settings: Settings, today: date | None = None) -> list[Finding]:
    findings = []
    if not settings.integration_enabled:
        findings.append(Finding(WARN, "settings", "integration_enabled is false: the producer will not fetch",
                                "set integration_enabled: true when the integration should run"))
    if settings.lookback_date > (today or date.today()):
        findings.append(Finding(WARN, "settings", f"lookback_date {settings.lookback_date} is in the future: "
                                                  "no payment qualifies yet",
                                "set the first day payments should be transferred from"))
    companies: dict[int, str] = {}
    for client in settings.invoice_clients:
        n = settings.company_of(client)
        if n in companies:
            findings.append(Finding(FAIL, "settings", f"invoice clients {companies[n]!r} and {client.name!r} both map to "
                                                      f"Visma company {n}: its payments could not be routed",
                                    "give each invoice client its own company_no"))
        companies.setdefault(n, client.name)
    for company in settings.companies:
        if company.company_no not in companies:
            findings.append(Finding(WARN, "settings", f"Visma company {company.company_no} has no invoice client: its "
                                                      "payments would be dead-lettered",
                                    "map an invoice client to it, or remove it"))
    admin = settings.admin
    if admin.enabled:
        for group in admin.groups:
            if not group.permissions:
                findings.append(Finding(WARN, "admin", f"group {group.name!r} grants no permission"))
        for user in admin.users:
            if not admin.permissions_of(user.name):
                findings.append(Finding(WARN, "admin", f"user {user.name!r} has no permission (groups: "
                                                       f"{', '.join(user.groups) or 'none'})"))
        if not admin.users:
            findings.append(Finding(WARN, "admin", "the admin API is on but no user is declared: nobody can use it",
                                    "declare users under admin.users and their groups under admin.groups"))
    summary = Finding(OK, "settings", f"{len(settings.companies)} Visma company(ies), "
                                      f"{len(settings.invoice_clients)} invoice client(s)")
    return [summary, *findings] if not any(f.level == FAIL for f in findings) else findings


# -- Kafka ----------------------------------------------------------------------------------
def _reachable(servers: str, timeout_s: float) -> list[str]:
    errors = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            return []
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {exc}")
    return errors


def _check_kafka(settings: Settings, timeout_s: float) -> tuple[list[Finding], set[str]]:
    """The findings, and the topics that exist (none when Kafka cannot be asked)."""
    from vb2po.kafka.clients import admin_client
    from vb2po.kafka.topics import wanted_topics

    kafka = settings.kafka
    errors = _reachable(kafka.bootstrap_servers, timeout_s)
    if errors:
        return [Finding(FAIL, "kafka", "no bootstrap server answers: " + "; ".join(errors),
                        "check kafka.bootstrap_servers (host:port,...) and that the brokers run and are reachable")], set()
    try:
        admin = admin_client(kafka)
        try:
            existing = set(admin.list_topics())
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - any client failure is the finding
        return [Finding(FAIL, "kafka", f"connected, but the Kafka client failed: {type(exc).__name__}: {exc}",
                        "check kafka.security_protocol, the SASL settings (sasl_mechanism, sasl_username, "
                        "sasl_password) and the TLS files (ssl_cafile, ssl_certfile, ssl_keyfile)")], set()
    missing = [t.name for t in wanted_topics(kafka) if t.name not in existing]
    note = f"; missing topics {', '.join(missing)} are created by the producer at start" if missing else ""
    return [Finding(OK, "kafka", f"{kafka.bootstrap_servers} answers ({kafka.security_protocol}){note}")], existing


# -- Visma ----------------------------------------------------------------------------------
def column_family(data_type: int | None, type_name: str | None) -> str:
    name = (type_name or "").upper().split("(")[0].strip()
    if name in _DECIMAL_NAMES or (not name and data_type in _SQL_DECIMAL):
        return "decimal"
    if name in _INTEGER_NAMES or data_type in _SQL_INTEGER:
        return "integer"
    if name in _TEXT_NAMES or name.endswith("CHAR") or data_type in _SQL_TEXT:
        return "text"
    return "other"


def _scale(type_name: str | None, decimal_digits: int | None) -> int:
    match = re.search(r"\(\s*\d+\s*,\s*(\d+)\s*\)", type_name or "")
    return int(match.group(1)) if match else int(decimal_digits or 0)


def marker_type_problem(value: int | str, data_type: int | None, type_name: str | None, size: int | None,
                        decimal_digits: int | None) -> str | None:
    """Why a column of this type cannot hold (and give back unchanged) the marker value; None if it can."""
    family = column_family(data_type, type_name)
    text = str(value)
    shown = f"{type_name or data_type}"
    if family == "integer":
        return None if isinstance(value, int) or text.lstrip("-").isdigit() else \
            f"an integer column ({shown}) cannot hold the marker value {text!r}"
    if family == "decimal":
        if not (isinstance(value, int) or text.lstrip("-").isdigit()):
            return f"a numeric column ({shown}) cannot hold the marker value {text!r}"
        if _scale(type_name, decimal_digits):
            return (f"a numeric column with decimals ({shown}) gives the value back as e.g. 1.000000, "
                    f"so a marked row would not read as marked")
        return None
    if family == "text":
        return None if not size or size >= len(text) else \
            f"a text column of {size} characters ({shown}) cannot hold the marker value {text!r}"
    return f"a column of type {shown} cannot hold the marker value {text!r}"


def _catalog(cursor, table: str, dialect: DialectName) -> dict[str, tuple]:
    schema = "dbo" if dialect is DialectName.TSQL else None
    return {row.column_name: (row.data_type, row.type_name, row.column_size, row.decimal_digits)
            for row in cursor.columns(table=table, schema=schema)}


def check_company(settings: Settings, company: CompanySettings, timeout_s: int = 5) -> list[Finding]:
    subject = f"visma company {company.company_no}"
    marker = settings.marker
    try:
        require_plain_identifier(marker.field)
    except ValueError as exc:
        return [Finding(FAIL, subject, f"marker.field: {exc}", "name one CustTr column, e.g. Gr4 or Inf2")]
    try:
        dialect = dialect_for(company.dialect or guess_dialect(company.odbc.get_secret_value()))
    except ValueError:
        return [Finding(FAIL, subject, f"unknown dialect {company.dialect!r}", "use tsql, postgresql or sqlite")]
    try:
        conn = pyodbc.connect(company.odbc.get_secret_value(), timeout=timeout_s, autocommit=True)
    except pyodbc.Error as exc:
        return [Finding(FAIL, subject, f"cannot connect over ODBC: {exc.args[-1] if exc.args else exc}",
                        f"check companies[company_no={company.company_no}].odbc (driver installed? server, database, "
                        "user and password right?) and that the database accepts connections from here")]
    try:
        cursor = conn.cursor()
        custtr = _catalog(cursor, "CustTr", dialect.name)
        actor = _catalog(cursor, "Actor", dialect.name) if settings.credit_block_sync else {}
    except pyodbc.Error as exc:
        return [Finding(FAIL, subject, f"connected, but reading the table catalog failed: {classify_db_error(exc)}",
                        "the ODBC user needs to read CustTr and Actor")]
    finally:
        conn.close()
    if not custtr:
        return [Finding(FAIL, subject, "connected, but there is no CustTr table",
                        "point the ODBC string at the company database (F0001, ...), not the system database")]
    findings = []
    needed = [*PAYMENT_COLUMNS, change_time_column(list(custtr))]
    missing = [c for c in needed if c not in custtr]
    if missing:
        findings.append(Finding(FAIL, subject, f"CustTr lacks column(s) {', '.join(missing)} that vb2po reads",
                                "is this a Visma Business company database?"))
    try:
        column = checked_marker_column(marker.field, list(custtr))
    except ColumnNotUsable as exc:
        findings.append(Finding(FAIL, subject, f"marker.field {marker.field!r}: {exc}",
                                "choose a free CustTr field, e.g. Gr4 (integer) or Inf2 (text)"))
        column = None
    try:
        currency_columns(settings, list(custtr))
    except ColumnNotUsable as exc:
        findings.append(Finding(FAIL, subject, str(exc), "set currency.number_column and currency.amount_column to "
                                                         "CustTr's currency columns"))
    if column is not None:
        problem = marker_type_problem(marker.value, *custtr[column])
        if problem:
            findings.append(Finding(FAIL, subject, f"marker.field {column!r}: {problem}",
                                    "choose a column of a fitting type, or a marker.value it can hold"))
    if settings.credit_block_sync:
        missing_actor = [c for c in ACTOR_COLUMNS if c not in actor]
        if missing_actor:
            findings.append(Finding(FAIL, subject, f"credit_block_sync is on, but Actor lacks {', '.join(missing_actor)}"
                                    if actor else "credit_block_sync is on, but there is no Actor table",
                                    "check the database, or set credit_block_sync: false"))
    if not findings and column is not None:  # (no column: a finding says why)
        findings.append(Finding(OK, subject, f"connected ({dialect.name.value}); marker column {column} "
                                             f"({custtr[column][1]}) holds {marker.value!r}"))
    return findings


# -- PowerOffice ----------------------------------------------------------------------------
def check_client(settings: Settings, client: InvoiceClientSettings) -> list[Finding]:
    from admin.actions.reconcile import poweroffice_client

    subject = f"poweroffice client {client.name}"
    step = "signing in"
    try:
        with poweroffice_client(settings, client) as api:
            api.tokens.token()
            step = "a first call (lock date settings)"
            api.lock_date()
            try:
                api.account_id(client.bank_account)
            except TerminalError as exc:
                return [Finding(FAIL, subject, f"signed in, but: {exc}",
                                f"set invoice_clients[{client.name}].bank_account to a general-ledger account "
                                "that exists in this PowerOffice client")]
    except (TransientError, TerminalError) as exc:
        if isinstance(exc, TerminalError) and exc.reason in ("unauthorized", "forbidden", "validation"):
            fix = "check poweroffice.application_key, poweroffice.subscription_key and this client's client_key"
        else:
            fix = "check poweroffice.api_url and poweroffice.token_url, and that PowerOffice is reachable from here"
        return [Finding(FAIL, subject, f"{step} failed ({exc.reason}): {exc}", fix)]
    return [Finding(OK, subject, f"signed in; bank account {client.bank_account} exists; maps to Visma company "
                                 f"{settings.company_of(client)}")]


def with_operator_changes(settings: Settings, existing_topics: set[str]) -> tuple[Settings, list[Finding]]:
    """The settings file plus what operators changed through the admin API (read from Kafka):
    the services run with these, so they are what gets checked."""
    from vb2po.integration_settings import apply_what_fits
    from vb2po.live_settings import KafkaOverridesStore

    if settings.kafka.topics.integration_settings not in existing_topics:
        return settings, []
    try:
        store = KafkaOverridesStore(settings.kafka, catch_up_timeout_s=5)
        try:
            overrides = store.current()
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - reported, and the file alone is checked
        return settings, [Finding(WARN, "settings", f"could not read the settings changed through the admin API "
                                                    f"({type(exc).__name__}); checking the file's values only")]
    if not overrides.values:
        return settings, []
    applied = apply_what_fits(settings, overrides)
    findings = [Finding(OK, "settings", f"with the changes made through the admin API (version {overrides.version} by "
                                        f"{overrides.changed_by} at {overrides.changed_at}): "
                                        f"{', '.join(sorted(overrides.values))}")]
    findings += [Finding(WARN, "settings", f"a change made through the admin API no longer fits the file and is left "
                                           f"out: {problem}", "`vb2po config reset PATH` removes it")
                 for problem in applied.stale]
    return applied.settings, findings


def run_checks(settings: Settings, *, with_changes: bool = False) -> list[Finding]:
    """Every check; `with_changes`: first apply what operators changed through the admin API
    (when Kafka answers), since that is what the services run with."""
    findings = check_settings(settings)
    kafka, topics = _check_kafka(settings, timeout_s=5)
    findings += kafka
    if with_changes and not failed(kafka):
        settings, changes = with_operator_changes(settings, topics)
        findings += changes
    for company in settings.companies:
        findings += check_company(settings, company)
    for client in settings.invoice_clients:
        findings += check_client(settings, client)
    return redacted(findings, settings)


def redacted(findings: Iterable[Finding], settings: Settings) -> list[Finding]:
    """The findings with every secret of `settings` masked (a driver error may quote one)."""
    redactor = Redactor.from_settings(settings)
    return [Finding(f.level, f.subject, redactor.text(f.message), redactor.text(f.fix)) for f in findings]


def render(findings: Iterable[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.level.upper():<5} {f.subject}: {f.message}")
        if f.fix and f.level != OK:
            lines.append(f"      fix: {f.fix}")
    return "\n".join(lines)


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.level == FAIL for f in findings)

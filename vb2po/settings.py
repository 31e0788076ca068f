"""One frozen settings object per process: a YAML file plus VB2PO_* environment overrides.

Environment variables win over the file; nested fields use `__`, e.g.
`VB2PO_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`. Secrets are `SecretStr`: never logged.
Every value is bounded: a setting is whatever a person typed, and a wrong one must be refused
at start with a line that names it, not discovered by the data it damages.
"""
from __future__ import annotations

import contextvars
import logging
import os
from datetime import date
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, YamlConfigSettingsSource

from vb2po.currencies import ALPHA
from vb2po.visma.identifiers import ColumnNotUsable, free_field, marker_value_problem

CONFIG_ENV = "VB2PO_CONFIG"

INT_MAX = 2**31 - 1  # Visma's INT columns
CompanyNo = Annotated[int, Field(ge=1, le=9999, description="Visma company number (database F0001 .. F9999)")]
VoucherType = Annotated[int, Field(ge=1, le=32767)]
ColumnName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")]


def _iso_currency(code: str) -> str:
    if code not in ALPHA:
        raise ValueError(f"{str(code)[:20]!r} is not an ISO 4217 currency code such as NOK or EUR")
    return code


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarkerSettings(_Section):
    """The processed marker: the CustTr free field the consumer sets once a payment is registered in
    PowerOffice; checked against every company's live table at start."""

    field: str = Field("Gr4", description="the CustTr free field (Gr, Gr2..Gr12, Inf, Inf2..Inf8) that marks a "
                                          "payment as registered in PowerOffice")
    value: int | str = Field(1, description="value written into that field; never its default (0 / empty)")

    @field_validator("field")
    @classmethod
    def _free_field(cls, value: str) -> str:
        try:
            return free_field(value)
        except ColumnNotUsable as exc:
            raise ValueError(str(exc)) from None

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not -INT_MAX <= value <= INT_MAX:
            raise ValueError(f"{value} does not fit Visma's integer fields (at most {INT_MAX})")
        if isinstance(value, str) and (len(value) > 60 or any(ord(c) < 32 or ord(c) == 127 for c in value)):
            raise ValueError("a text marker is at most 60 printable characters")
        return value

    @model_validator(mode="after")
    def _value_fits(self) -> "MarkerSettings":
        problem = marker_value_problem(self.field, self.value)
        if problem:
            raise ValueError(problem)
        return self


class PaymentRuleSettings(_Section):
    """Which CustTr rows are payments: negative amount and voucher type in `voucher_types`; and
    which are reversals of payments: positive amount and voucher type in `reversal_voucher_types`."""

    voucher_types: tuple[VoucherType, ...] = Field((3,), min_length=1, max_length=50,
                                                   description="the CustTr voucher types (VoTp) of payments")
    reversal_voucher_types: tuple[VoucherType, ...] | None = Field(
        None, max_length=50, description="voucher types of a counter-row that reverses a payment (positive Am, same "
                                         "customer and invoice); unset: the payment types; []: reversals not looked for")

    @property
    def reversal_types(self) -> tuple[int, ...]:
        return self.voucher_types if self.reversal_voucher_types is None else self.reversal_voucher_types


class CurrencySettings(_Section):
    """Where a CustTr row's currency is (unconfirmed column names: checked against the live table;
    a table without them is in the company currency), and how a currency number becomes an ISO code."""

    number_column: ColumnName = Field("Cur", description="CustTr column with the row's currency number (0: company currency)")
    amount_column: ColumnName = Field("CurAm", description="CustTr column with the amount in that currency")
    codes: dict[Annotated[int, Field(ge=1, le=INT_MAX)], str] = Field(
        default_factory=dict, max_length=500,
        description="currency number -> ISO code; overrides the company's currency register (table Cur) and the "
                    "ISO 4217 numeric codes used where there is no register")

    @field_validator("codes")
    @classmethod
    def _iso_codes(cls, codes: dict[int, str]) -> dict[int, str]:
        for code in codes.values():
            _iso_currency(code)
        return codes


class CompanySettings(_Section):
    """One Visma company database (F0001, ...). Holds a secret: on Kubernetes the whole list comes
    from the Secret (VB2PO_COMPANIES, JSON)."""

    company_no: CompanyNo
    odbc: SecretStr = Field(description="ODBC connection string of the company database (F0001 ...)")
    dialect: Literal["tsql", "postgresql", "sqlite"] | None = Field(
        None, description="tsql | postgresql | sqlite; guessed from the driver when unset")
    currency: str = Field("NOK", description="the company currency (ISO 4217) that CustTr.Am is kept in")

    _iso = field_validator("currency")(_iso_currency)


class InvoiceClientSettings(_Section):
    """A PowerOffice client (the seed's "fakturaklient"). Holds a secret: on Kubernetes the whole list
    comes from the Secret (VB2PO_INVOICE_CLIENTS, JSON)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
                      description="the name operators use for it (`vb2po fetch-now --client NAME`)")
    client_key: SecretStr = Field(description="the PowerOffice client key")
    bank_account: int = Field(1920, ge=1000, le=99_999_999, description="bank general-ledger account the payments are debited to")
    company_no: CompanyNo | None = Field(None, description="Visma company; the default company when unset")


# Consumers keep to this share of PowerOffice's budget (it counts a sliding second: room for jitter);
# the rest is where operator actions fit (vb2po.poweroffice.ratelimit).
RATE_HEADROOM = 0.97
OPERATOR_RATE_DEFAULT = 0.3


class PowerOfficeSettings(_Section):
    """PowerOffice Go API v2."""

    api_url: str = Field("https://goapi.poweroffice.net/v2", description="API base URL")
    token_url: str = Field("https://goapi.poweroffice.net/OAuth/Token", description="OAuth token URL")
    application_key: SecretStr = Field(SecretStr(""), description="the application key")
    subscription_key: SecretStr = Field(SecretStr(""), description="the subscription key; the rate limit counts per key")
    timeout_s: float = Field(10.0, gt=0, le=300, description="seconds to wait for a PowerOffice answer")
    requests_per_second: float = Field(10.0, ge=0, le=1000, description="PowerOffice's budget per subscription key; 0: no limit")
    operator_requests_per_second: float = Field(
        OPERATOR_RATE_DEFAULT, gt=0, le=100,
        description="calls/s for reconcile (many calls, run by the producer); the default fits "
                               "in the 3 % of requests_per_second the consumers leave free")

    @model_validator(mode="after")
    def _operators_fit(self) -> "PowerOfficeSettings":
        free = self.requests_per_second * (1 - RATE_HEADROOM)
        if self.requests_per_second > 0 and self.operator_requests_per_second > max(free, OPERATOR_RATE_DEFAULT) + 1e-9:
            raise ValueError(f"poweroffice.operator_requests_per_second ({self.operator_requests_per_second}) must fit "
                             f"in what the consumers leave free of requests_per_second ({free:.2f}/s); "
                             "more would make PowerOffice refuse calls with 429")
        return self


class TopicSettings(_Section):
    """Topic names and how they are created (by the producer at start, when missing)."""

    payments: str = Field("vb2po.payments", description="payment events")
    credit_blocks: str = Field("vb2po.credit-blocks", description="credit-block events")
    dead_letters: str = Field("vb2po.dead-letters", description="what could not be published or applied, with the reason")
    producer_state: str = Field("vb2po.producer-state", description="compacted: the producer's committed cursors")
    consumer_state: str = Field("vb2po.consumer-state", description="compacted: projects the consumer denied time tracking on")
    dead_lettered: str = Field("vb2po.dead-lettered", description="compacted: what the consumer dead-lettered and "
                                                                  "not yet redriven (one letter per bad item, not per delivery)")
    intents: str = Field("vb2po.intents", description="compacted: vouchers the consumer is about to post (looked up in "
                                                      "PowerOffice before posting again after an outcome it cannot trust)")
    partitions: int = Field(6, ge=1, le=10_000, description="partitions per event topic: the upper bound on useful "
                                                            "consumer instances")
    replication_factor: int = Field(1, ge=1, le=10, description="3 on a production cluster")
    retention_ms: int = Field(14 * 24 * 3600 * 1000, ge=3_600_000, le=10 * 365 * 24 * 3600 * 1000,
                              description="how long events are kept: the window replay can reach back")
    admin_tokens: str = Field("vb2po.admin-tokens",
                              description="compacted: hashes of the operators' personal tokens, revocations")
    integration_settings: str = Field("vb2po.integration-settings",
                                      description="compacted: the integration settings changed through the admin API")
    audit: str = Field("vb2po.audit", description="who did what when through the admin API, and with what outcome")
    audit_retention_ms: int = Field(400 * 24 * 3600 * 1000, ge=3_600_000, le=10 * 365 * 24 * 3600 * 1000,
                                    description="how long audit entries are kept")
    applied: str = Field("vb2po.applied", description="append-only: one record per payment applied (the console's counts)")
    applied_retention_ms: int = Field(35 * 24 * 3600 * 1000, ge=3_600_000, le=10 * 365 * 24 * 3600 * 1000,
                                      description="how long applied-payment records are kept")


class KafkaSettings(_Section):
    """The Kafka cluster."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    topics: TopicSettings = TopicSettings()
    consumer_group: str = Field("vb2po-consumer", description="the group every consumer instance joins")
    security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str | None = Field(None,
                                       description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_SSL or SASL_PLAINTEXT)")
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_cafile: str | None = Field(None, description="CA bundle (PEM) that signed the brokers' certificates")
    ssl_certfile: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="its private key (PEM)")


class ProducerSettings(_Section):
    """How the producer polls each Visma company."""

    poll_interval_s: float = Field(0.25, gt=0, le=3600, description="how often a company that had a new payment in the "
                                   "last minute is polled")
    idle_poll_interval_s: float = Field(0.75, gt=0, le=3600, description="how often a company without a new payment for a "
                                        "minute is polled (the first payment after a quiet spell waits up to this long)")
    overlap_s: float = Field(120.0, ge=0, le=86_400, description="each poll also re-reads the unmarked payments changed "
                             "this long behind its cursor and publishes those not published yet: a transaction that "
                             "commits up to this long (less a minute where CustTr has no ChTmms) after it wrote a "
                             "payment is published by the next poll; a later one by the sweep")
    page_size: int = Field(2000, gt=0, le=100_000, description="rows per read and per Kafka transaction")
    threads: int = Field(4, ge=1, le=256, description="threads polling the companies, each company when it is due "
                         "(a few carry hundreds of companies; more help only where Visma answers slowly; a company "
                         "stuck in a query for over 30 s gets a thread of its own meanwhile)")
    credit_block_interval_s: float = Field(10.0, gt=0, le=86_400, description="how often Actor.CrSusp of the blocked "
                                           "customers, and of those last published as blocked, is compared with the "
                                           "published state (every customer's at start and at each re-assertion)")
    reassert_interval_s: float = Field(3600.0, gt=0, le=7 * 86_400, description="how often standing blocks are published "
                                       "again and every customer's Actor.CrSusp is compared (a customer created "
                                       "unblocked gets its first event then)")
    sweep_interval_s: float = Field(300.0, gt=0, le=86_400, description="how often the safety net looks for unmarked "
                                    "payments (also soon after a start; the last sweep's time is kept in Kafka, so "
                                    "restarts do not put it off)")
    sweep_grace_s: float = Field(120.0, ge=0, le=86_400, description="the sweep publishes again only a payment still "
                                 "unmarked this long after it was published (it may still be on its way); each "
                                 "time the sweep has published it, it waits twice as long, up to a day")

    @model_validator(mode="before")
    @classmethod
    def _settle_s_is_gone(cls, data: object) -> object:
        """`settle_s` (the held-back window of vb2po <= 0.1) is no longer used: the re-scan of
        `overlap_s` finds late commits instead. Old files and variables still load, with a warning."""
        if isinstance(data, dict) and "settle_s" in data:
            data = {k: v for k, v in data.items() if k != "settle_s"}
            logging.getLogger(__name__).warning(
                "producer.settle_s is no longer used and is ignored: nothing is held back any more; late commits are "
                "found by re-reading the last producer.overlap_s (see README, 'Late commits'); remove it from the settings")
        return data


class ConsumerSettings(_Section):
    """How each consumer instance applies events."""

    concurrency: int = Field(16, ge=1, le=256, description="PowerOffice requests open at once per instance; "
                             "half as many again customers are applied at once, so their Kafka and Visma work "
                             "overlaps the requests")
    max_in_flight: int = Field(5000, ge=1, le=1_000_000, description="records taken from Kafka but not yet done, before pausing")
    instances: int = Field(1, ge=1, le=1000, description="consumer instances sharing PowerOffice's rate limit (each takes 1/n)")
    instance_id: str | None = Field(None, max_length=249, description="static group membership (e.g. the StatefulSet pod name): "
                                    "a restarted instance takes its partitions back without a rebalance")
    session_timeout_ms: int = Field(6000, ge=6000, le=1_800_000, description="a silent instance loses its partitions "
                                    "after this (the broker's group.min.session.timeout.ms is 6000 by default); "
                                    "heartbeats go every quarter of it")
    poll_timeout_ms: int = Field(200, ge=1, le=60_000, description="how long one Kafka poll waits for records")
    max_records: int = Field(500, ge=1, le=100_000, description="records per Kafka poll")


PERMISSIONS = ("integration", "fetch.client", "fetch.all")
Permission = Literal["integration", "fetch.client", "fetch.all"]


class AdminGroupSettings(_Section):
    """A group of operators and the permissions it grants (the seed's three)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="the group's name")
    permissions: tuple[Permission, ...] = Field((), description="integration, fetch.client and/or fetch.all")


class AdminUserSettings(_Section):
    """An operator; tokens are personal (`vb2po token create --user NAME`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$", description="the user's name")
    groups: tuple[str, ...] = Field((), description="names of admin.groups the user is in")
    clients: tuple[str, ...] = Field((), description="the invoice clients this user fetches for and sees (fetch.client); "
                                     "empty: all")


class AdminSettings(_Section):
    """The admin HTTP API, served by the producer process (fetch now must run where the
    company workers are). Tokens and audit entries live in Kafka (`kafka.topics.admin_tokens`,
    `kafka.topics.audit`); users and groups are declared here."""

    enabled: bool = Field(False, description="serve the admin API from the producer")
    bind_address: str = Field("127.0.0.1", description="0.0.0.0 in a container, so the admin Service reaches it")
    port: int = Field(9465, ge=0, le=65535, description="0: the OS picks one (tests)")
    url: str = Field("", description="where `vb2po` commands reach the API; default http://127.0.0.1:<port>")
    token_ttl_days: int = Field(90, gt=0, le=3650, description="lifetime of a new personal token")
    groups: tuple[AdminGroupSettings, ...] = Field((), description="groups of operators and the permissions they grant")
    users: tuple[AdminUserSettings, ...] = Field((), description="the operators and their groups")

    @model_validator(mode="after")
    def _groups_known(self) -> "AdminSettings":
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"admin.groups: each group name once, got {names}")
        users = [u.name for u in self.users]
        if len(set(users)) != len(users):
            raise ValueError(f"admin.users: each user name once, got {users}")
        for user in self.users:
            unknown = sorted(set(user.groups) - set(names))
            if unknown:
                raise ValueError(f"admin user {user.name!r} is in unknown group(s) {unknown}; "
                                 f"declare them under admin.groups (known: {names})")
            everywhere = sorted(self.permissions_of(user.name) & {"integration", "fetch.all"})
            if user.clients and everywhere:
                raise ValueError(f"admin user {user.name!r} is limited to the invoice clients {list(user.clients)}, but "
                                 f"holds {everywhere}, which act on every client; remove the limit or those groups")
        return self

    def user(self, name: str) -> AdminUserSettings | None:
        return next((u for u in self.users if u.name == name), None)

    def permissions_of(self, user: str) -> frozenset[str]:
        found = self.user(user)
        if found is None:
            return frozenset()
        return frozenset(p for g in self.groups if g.name in found.groups for p in g.permissions)

    def clients_of(self, user: str) -> frozenset[str] | None:
        """The invoice clients a user is limited to; None: every client."""
        found = self.user(user)
        return frozenset(found.clients) if found is not None and found.clients else None

    @property
    def api_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


class Settings(BaseSettings):
    """All settings of a vb2po process: a YAML file plus VB2PO_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="VB2PO_", env_nested_delimiter="__", frozen=True, extra="forbid")

    integration_enabled: bool = Field(True, description="the seed's \"activate the Visma Business integration\"; "
                                      "false: the producer stops reading Visma")
    visma_timezone: str = Field("Europe/Oslo", description="Visma stores local times without a zone; this makes them "
                                "explicit (IANA name)")
    lookback_date: date = Field(ge=date(2000, 1, 1), le=date(2100, 12, 31),
                                description="payments with an earlier voucher date are not transferred")
    credit_block_sync: bool = Field(True, description="customers with a credit block in Visma get time registration "
                                    "blocked in PowerOffice")
    marker: MarkerSettings = MarkerSettings()
    payment_rule: PaymentRuleSettings = PaymentRuleSettings()
    unmatched_payments: Literal["dead_letter", "on_account"] = Field(
        "dead_letter", description="a payment whose invoice is not in PowerOffice (or that names none): dead_letter, or "
                                   "on_account: posted to the customer's sub-ledger without an invoice (reconcile lists it)")
    currency: CurrencySettings = CurrencySettings()
    default_company_no: CompanyNo = Field(1, description="the Visma company of invoice clients that name none")
    companies: tuple[CompanySettings, ...] = Field(description="one entry per Visma company database")
    invoice_clients: tuple[InvoiceClientSettings, ...] = Field(description="the PowerOffice clients, each mapped to "
                                                               "one Visma company")
    poweroffice: PowerOfficeSettings = PowerOfficeSettings()
    kafka: KafkaSettings = KafkaSettings()
    producer: ProducerSettings = ProducerSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    metrics_port: int = Field(0, ge=0, le=65535, description="/metrics, /healthz, /readyz; 0 turns the server off")
    metrics_bind_address: str = Field("127.0.0.1", description="0.0.0.0 in a container, so probes and scrapes reach it")
    admin: AdminSettings = AdminSettings()

    @field_validator("visma_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Oslo") from exc
        return value

    @model_validator(mode="after")
    def _clients_map_to_companies(self) -> "Settings":
        known = {c.company_no for c in self.companies}
        for client in self.invoice_clients:
            if self.company_of(client) not in known:
                raise ValueError(
                    f"invoice client {client.name!r} maps to Visma company {self.company_of(client)}, "
                    f"which has no entry under companies: (known: {sorted(known)})"
                )
        names = [c.name for c in self.invoice_clients]
        for user in self.admin.users:
            unknown = sorted(set(user.clients) - set(names))
            if unknown:
                raise ValueError(f"admin user {user.name!r} is granted unknown invoice client(s) {unknown}; "
                                 f"known: {names}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.visma_timezone)

    def company_of(self, client: InvoiceClientSettings) -> int:
        return client.company_no or self.default_company_no

    def company(self, company_no: int) -> CompanySettings:
        for company in self.companies:
            if company.company_no == company_no:
                return company
        raise KeyError(f"no Visma company {company_no} configured")

    def clients_of_company(self, company_no: int) -> list[InvoiceClientSettings]:
        return [c for c in self.invoice_clients if self.company_of(c) == company_no]

    def client(self, name: str) -> InvoiceClientSettings:
        for client in self.invoice_clients:
            if client.name == name:
                return client
        raise KeyError(f"no invoice client {name!r}; known: {[c.name for c in self.invoice_clients]}")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # Environment variables win over the file (the chart's Secret over its ConfigMap).
        return (init_settings, env_settings, _SettingsFile(settings_cls, yaml_file=_config_file()))


class _SettingsFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, refusing a file that is not a mapping of settings."""

    def _read_file(self, file_path: Path | Traversable) -> dict:
        data = super()._read_file(file_path)
        if not isinstance(data, dict):
            raise ValueError(f"{file_path}: expected a mapping of settings at the top level")
        return data


# The file of the `load` call in progress (per thread); else $VB2PO_CONFIG; else no file.
_loading: contextvars.ContextVar[Path | None] = contextvars.ContextVar("vb2po_settings_file", default=None)


def _config_file() -> Path | None:
    path = _loading.get() or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is None:
        return None
    if not path.is_file():  # pydantic-settings skips a missing file; a named one must exist
        raise FileNotFoundError(f"settings file {path} not found")
    return path


def load(path: str | Path | None = None) -> Settings:
    """The settings from `path` (else $VB2PO_CONFIG) with the VB2PO_* environment on top."""
    token = _loading.set(Path(path) if path else None)
    try:
        return Settings()
    finally:
        _loading.reset(token)

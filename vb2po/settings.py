"""One frozen settings object per process: a YAML file plus VB2PO_* environment overrides.

Environment variables win over the file; nested fields use `__`, e.g.
`VB2PO_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`. Secrets are `SecretStr`: never logged.
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "VB2PO_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarkerSettings(_Section):
    field: str = Field("Gr4", description="CustTr column that marks a payment as registered in PowerOffice")
    value: int | str = Field(1, description="value written into that column")


class PaymentRuleSettings(_Section):
    """Which CustTr rows are payments: negative amount, voucher type in this list, and an
    invoice number (a payment row without one is reported as a bad row)."""

    voucher_types: tuple[int, ...] = (3,)


class CompanySettings(_Section):
    company_no: int = Field(gt=0)
    odbc: SecretStr = Field(description="ODBC connection string of the company database (F0001 ...)")
    dialect: str | None = Field(None, description="tsql | postgresql | sqlite; guessed from the driver when unset")
    currency: str = "NOK"


class InvoiceClientSettings(_Section):
    name: str
    client_key: SecretStr
    bank_account: int = Field(1920, description="bank general-ledger account the payments are debited to")
    company_no: int | None = Field(None, description="Visma company; the default company when unset")


# Consumers keep to this share of PowerOffice's budget (it counts a sliding second: room for jitter);
# the rest is where operator actions fit (vb2po.poweroffice.ratelimit).
RATE_HEADROOM = 0.97
OPERATOR_RATE_DEFAULT = 0.3


class PowerOfficeSettings(_Section):
    api_url: str = "https://goapi.poweroffice.net/v2"
    token_url: str = "https://goapi.poweroffice.net/OAuth/Token"
    application_key: SecretStr = SecretStr("")
    subscription_key: SecretStr = SecretStr("")
    timeout_s: float = 10.0
    requests_per_second: float = Field(10.0, ge=0, description="PowerOffice's budget per subscription key; 0: no limit")
    operator_requests_per_second: float = Field(
        OPERATOR_RATE_DEFAULT, gt=0, description="calls/s for reconcile (many calls, run by the producer); the default fits "
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
    payments: str = "vb2po.payments"
    credit_blocks: str = "vb2po.credit-blocks"
    dead_letters: str = "vb2po.dead-letters"
    producer_state: str = "vb2po.producer-state"
    consumer_state: str = "vb2po.consumer-state"
    partitions: int = 6
    replication_factor: int = 1
    retention_ms: int = 14 * 24 * 3600 * 1000
    admin_tokens: str = Field("vb2po.admin-tokens", description="compacted: hashes of the operators' personal tokens, revocations")
    integration_settings: str = Field("vb2po.integration-settings",
                                      description="compacted: the integration settings changed through the admin API")
    audit: str = Field("vb2po.audit", description="who did what when through the admin API, and with what outcome")
    audit_retention_ms: int = Field(400 * 24 * 3600 * 1000, gt=0, description="how long audit entries are kept")
    applied: str = Field("vb2po.applied", description="append-only: one record per payment applied (the console's counts)")
    applied_retention_ms: int = Field(35 * 24 * 3600 * 1000, gt=0, description="how long applied-payment records are kept")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: TopicSettings = TopicSettings()
    consumer_group: str = "vb2po-consumer"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_SSL or SASL_PLAINTEXT)")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = Field(None, description="CA bundle (PEM) that signed the brokers' certificates")
    ssl_certfile: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="its private key (PEM)")


class ProducerSettings(_Section):
    poll_interval_s: float = Field(0.5, gt=0, description="how often each company's payments are polled")
    settle_s: float = Field(1.0, ge=0, description="newest changes are held back this long so open transactions can commit")
    page_size: int = Field(2000, gt=0, le=100_000, description="rows per read and per Kafka transaction")
    credit_block_interval_s: float = Field(10.0, gt=0, description="how often Actor.CrSusp is compared with the published state")
    reassert_interval_s: float = Field(3600.0, gt=0, description="how often standing blocks are published again")
    sweep_interval_s: float = Field(300.0, gt=0, description="how often the safety net looks for unmarked payments")
    sweep_grace_s: float = Field(120.0, ge=0, description="a payment younger than this is not swept (it may still be in flight)")


class ConsumerSettings(_Section):
    concurrency: int = Field(16, ge=1, le=256, description="customers applied at the same time per instance")
    max_in_flight: int = Field(5000, ge=1, description="records taken from Kafka but not yet done, before pausing")
    instances: int = Field(1, ge=1, description="consumer instances sharing PowerOffice's rate limit (each takes 1/n)")
    instance_id: str | None = Field(None, description="static group membership (e.g. the StatefulSet pod name): "
                                    "a restarted instance takes its partitions back without a rebalance")
    session_timeout_ms: int = Field(10_000, ge=6000, description="a silent instance loses its partitions after this")
    poll_timeout_ms: int = Field(200, ge=1)
    max_records: int = Field(500, ge=1)


PERMISSIONS = ("integration", "fetch.client", "fetch.all")
Permission = Literal["integration", "fetch.client", "fetch.all"]


class AdminGroupSettings(_Section):
    """A group of operators and the permissions it grants (the seed's three)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    permissions: tuple[Permission, ...] = ()


class AdminUserSettings(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    groups: tuple[str, ...] = ()
    clients: tuple[str, ...] = Field((), description="the invoice clients this user fetches for and sees (fetch.client); "
                                     "empty: all")


class AdminSettings(_Section):
    """The admin HTTP API, served by the producer process (fetch now must run where the
    company workers are). Tokens and audit entries live in Kafka (`kafka.topics.admin_tokens`,
    `kafka.topics.audit`); users and groups are declared here."""

    enabled: bool = False
    bind_address: str = Field("127.0.0.1", description="0.0.0.0 in a container, so the admin Service reaches it")
    port: int = Field(9465, ge=0, le=65535, description="0: the OS picks one (tests)")
    url: str = Field("", description="where `vb2po` commands reach the API; default http://127.0.0.1:<port>")
    token_ttl_days: int = Field(90, gt=0, le=3650, description="lifetime of a new personal token")
    groups: tuple[AdminGroupSettings, ...] = ()
    users: tuple[AdminUserSettings, ...] = ()

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
    model_config = SettingsConfigDict(env_prefix="VB2PO_", env_nested_delimiter="__", frozen=True, extra="forbid")

    integration_enabled: bool = True
    visma_timezone: str = "Europe/Oslo"
    lookback_date: date = Field(description="payments with an earlier voucher date are not transferred")
    credit_block_sync: bool = True
    marker: MarkerSettings = MarkerSettings()
    payment_rule: PaymentRuleSettings = PaymentRuleSettings()
    default_company_no: int = 1
    companies: tuple[CompanySettings, ...]
    invoice_clients: tuple[InvoiceClientSettings, ...]
    poweroffice: PowerOfficeSettings = PowerOfficeSettings()
    kafka: KafkaSettings = KafkaSettings()
    producer: ProducerSettings = ProducerSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    metrics_port: int = Field(0, ge=0, description="/metrics, /healthz, /readyz; 0 turns the server off")
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
        return (init_settings, env_settings, _YamlFile(settings_cls))


class _YamlFile(PydanticBaseSettingsSource):
    """The settings file named by VB2PO_CONFIG (or passed to `load`)."""

    path: Path | None = None

    def get_field_value(self, field, field_name):  # pragma: no cover - whole-file source
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self.path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
        if path is None:
            return {}
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level")
        return data


def load(path: str | Path | None = None) -> Settings:
    _YamlFile.path = Path(path) if path else None
    try:
        return Settings()
    finally:
        _YamlFile.path = None

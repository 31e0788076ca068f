"""Settings for vb2po running against the local stack (broker, sandbox, Visma databases).

Used by `make demo`, the integration tests and the benchmarks, so all three configure the
service the same way a person would: through a settings file.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from vb2po.settings import Settings, TopicSettings


@dataclass(frozen=True)
class LocalClient:
    name: str
    client_key: str
    company_no: int
    connection_string: str


def settings_dict(
    *,
    bootstrap_servers: str,
    api_url: str,
    token_url: str,
    application_key: str,
    subscription_key: str,
    clients: list[LocalClient],
    lookback: date,
    namespace: str = "vb2po",
    partitions: int = 6,
    poll_interval_s: float | None = None,
    idle_poll_interval_s: float | None = None,
    metrics_port: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete settings mapping; `namespace` keeps topics and groups of parallel runs apart."""
    companies = {c.company_no: c.connection_string for c in clients}
    data: dict[str, Any] = {
        "visma_timezone": "Europe/Oslo",
        "lookback_date": lookback.isoformat(),
        "credit_block_sync": True,
        "marker": {"field": "Gr4", "value": 1},
        "payment_rule": {"voucher_types": [3]},
        "default_company_no": min(companies),
        "companies": [{"company_no": n, "odbc": cs, "currency": "NOK"} for n, cs in sorted(companies.items())],
        "invoice_clients": [
            {"name": c.name, "client_key": c.client_key, "bank_account": 1920, "company_no": c.company_no}
            for c in clients
        ],
        "poweroffice": {
            "api_url": api_url, "token_url": token_url,
            "application_key": application_key, "subscription_key": subscription_key,
        },
        "kafka": {
            "bootstrap_servers": bootstrap_servers,
            "consumer_group": f"{namespace}-consumer",
            "topics": {**namespaced_topics(namespace), "partitions": partitions, "replication_factor": 1},
        },
        # the producer's defaults unless told (tests poll every 0.2 s, busy or idle)
        "producer": {"page_size": 2000, **({"poll_interval_s": poll_interval_s} if poll_interval_s else {}),
                     **({"idle_poll_interval_s": idle_poll_interval_s} if idle_poll_interval_s else {})},
        "metrics_port": metrics_port,
    }
    for key, value in (extra or {}).items():
        data[key] = value
    return data


def namespaced_topics(namespace: str) -> dict[str, str]:
    """Every topic vb2po uses, named under `namespace` (vb2po.payments -> <namespace>.payments)."""
    return {key: f"{namespace}.{name.removeprefix('vb2po.')}"
            for key, name in TopicSettings().model_dump().items() if isinstance(name, str)}


def write_settings(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def to_settings(data: dict[str, Any]) -> Settings:
    return Settings(**data)

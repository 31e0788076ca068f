"""Helpers for the operator-surface tests: settings with the admin API on, the seed's groups and
users, tokens, and driving the API over HTTP and the `vb2po` command in-process."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from admin.api.token_store import KafkaTokenStore
from admin.api.tokens import issue
from devstack.stack import LocalClient, settings_dict, to_settings, write_settings
from vb2po.kafka.topics import ensure_topics
from vb2po.settings import Settings

ODBC_PASSWORD = "odbc-s3cret-pw"  # appended to every ODBC string: it must never show anywhere

GROUPS = [
    {"name": "integrators", "permissions": ["integration"]},
    {"name": "invoice-overview", "permissions": ["fetch.client"]},
    {"name": "file-import", "permissions": ["fetch.all"]},
]
# One user per permission, one with all three, one with none.
USERS = [
    {"name": "ida", "groups": ["integrators"]},
    {"name": "otto", "groups": ["invoice-overview"]},
    {"name": "frida", "groups": ["file-import"]},
    {"name": "alma", "groups": ["integrators", "invoice-overview", "file-import"]},
    {"name": "nils", "groups": []},
]
USER_OF = {"integration": "ida", "fetch.client": "otto", "fetch.all": "frida"}


def with_password(connection_string: str) -> str:
    return f"{connection_string};PWD={ODBC_PASSWORD}"


def operator_settings(kafka_bootstrap: str, sandbox, companies: dict[int, str], client_keys: dict[int, str], *,
                      lookback: date = date(2026, 1, 1), producer: dict | None = None,
                      admin: dict | None = None, **extra: Any) -> dict:
    """A full settings mapping, its own namespace of topics and group, admin API on (port 0)."""
    namespace = f"op-{uuid.uuid4().hex[:10]}"
    clients = [LocalClient(f"client-{n}", client_keys[n], n, with_password(cs)) for n, cs in sorted(companies.items())]
    data = settings_dict(
        bootstrap_servers=kafka_bootstrap, api_url=sandbox.api_url, token_url=sandbox.token_url,
        application_key=sandbox.application_key, subscription_key=sandbox.subscription_key, clients=clients,
        lookback=lookback, namespace=namespace, partitions=3, poll_interval_s=0.2, idle_poll_interval_s=0.2,
    )
    data["admin"] = {"enabled": True, "port": 0, "groups": GROUPS, "users": USERS, **(admin or {})}
    data["producer"].update(producer or {})
    data.update(extra)
    return data


def settings_file(tmp: Path, data: dict) -> Path:
    return write_settings(tmp / f"settings-{uuid.uuid4().hex[:6]}.yaml", data)


def token_for(settings: Settings, user: str, *, expires_at: datetime | None = None) -> str:
    """Issue a token straight into the store (what `vb2po token create --local` does)."""
    ensure_topics(settings.kafka)
    now = datetime.now(timezone.utc)
    issued = issue(user, created_by="test", now=now, expires_at=expires_at or now + timedelta(days=1))
    store = KafkaTokenStore(settings.kafka)
    try:
        store.put(issued.record)
    finally:
        store.close()
    return issued.token


@dataclass
class Api:
    """The admin API as one user sees it."""

    url: str
    token: str | None

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kwargs.pop("headers", None) or {})
        return requests.request(method, self.url + path, headers=headers, timeout=120, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.call("POST", path, json=body or {})


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`vb2po ARGS` in this process; returns (exit code, stdout, stderr)."""
    from vb2po.cli import main

    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_settings(data: dict) -> Settings:
    return to_settings(data)

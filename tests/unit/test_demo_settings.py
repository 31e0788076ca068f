"""`make demo` runs settings.example.yaml pointed at the local stack: it must stay valid whatever
the example grows (it broke once when the example granted a user an invoice client by name)."""
from __future__ import annotations

from types import SimpleNamespace

from devstack.demo import demo_settings
from devstack.stack import to_settings


def test_the_demo_settings_built_from_the_example_are_valid():
    kafka = SimpleNamespace(bootstrap_servers="127.0.0.1:9092")
    sandbox = SimpleNamespace(api_url="http://127.0.0.1:1/v2", token_url="http://127.0.0.1:1/OAuth/Token",
                              application_key="app", subscription_key="sub")
    settings = to_settings(demo_settings(kafka, sandbox, "Driver=SQLite3;Database=/tmp/F0001.db"))
    names = {client.name for client in settings.invoice_clients}
    assert names == {"demo"}
    assert all(set(user.clients or ()) <= names for user in settings.admin.users)

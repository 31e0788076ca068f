"""Shared fixtures, and the markers taken from where a test lives.

Each real part of the stack has its own fixture module under tests/fixtures/. Every test under
tests/integration/ is marked `integration` here (from its folder, so a new file cannot forget
it): `pytest -m "not integration"` runs the unit tests alone, in seconds, without a broker.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.sandbox",
    "tests.fixtures.visma",
    "tests.fixtures.stack",
    "tests.fixtures.world",
    "tests.fixtures.browser",
]

INTEGRATION = Path(__file__).parent / "integration"
# Fixtures that start a real part of the stack: only integration tests may use them.
REAL_STACK = frozenset({"kafka_cluster", "kafka_bootstrap", "kafka_three_node_cluster", "sandbox_server",
                        "postgres_server", "postgres_company_db", "sqlite_company_db", "company_db",
                        "make_settings", "make_world"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
            continue
        real = sorted(REAL_STACK.intersection(getattr(item, "fixturenames", ())))
        if real:
            raise pytest.UsageError(f"{item.nodeid} starts part of the real stack ({', '.join(real)}): "
                                    "move it to tests/integration/, so `-m 'not integration'` stays fast")

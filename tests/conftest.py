"""Shared fixtures. Each real part of the stack has its own fixture module under tests/fixtures/."""
pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.sandbox",
    "tests.fixtures.visma",
    "tests.fixtures.stack",
    "tests.fixtures.world",
    "tests.fixtures.browser",
]

"""Shared fixtures live in tests/fixtures/, one module per real dependency."""

pytest_plugins = [
    "tests.fixtures.moto_server",
    "tests.fixtures.postgres",
    "tests.fixtures.server",
]

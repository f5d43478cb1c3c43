"""Root pytest configuration: shared fixtures live in tests/fixtures/, one module each."""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.redis_server",
    "tests.fixtures.mongo_server",
    "tests.fixtures.postgres_server",
]

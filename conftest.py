"""Root pytest configuration: shared fixtures live in tests/fixtures/, one module each."""

import os

# The servers the tests start stop at once: the readiness drain (3 s by default, for
# load balancers to notice) would only add its seconds to every test's teardown.
# The tests of the drain itself set JACSCALE_SHUTDOWN_DRAIN_SECONDS, or remove it.
os.environ.setdefault("JACSCALE_SHUTDOWN_DRAIN_SECONDS", "0")

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.redis_server",
    "tests.fixtures.mongo_server",
    "tests.fixtures.postgres_server",
]

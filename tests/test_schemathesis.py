"""Property-based fuzzing of every example's /openapi.json with schemathesis: no 5xx.

Each example program is served in-process; schemathesis generates requests for
every operation its /openapi.json describes, both valid ones (the schema's own
shapes, signed in with a real token) and invalid ones (wrong types, missing
fields, odd strings), and any answer of 500 or more fails the test with the
request that caused it. The number of cases per operation is bounded
(JACSCALE_FUZZ_CASES, default 8 per mode) and the generation is derandomised, so a
run is repeatable and takes about a minute.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from jacscale_core.testing import TestApp
from tests.auth.helpers import FAST_ENV, PASSWORD, unique_email
from tests.fixtures.servers import EXAMPLES

CASES = int(os.environ.get("JACSCALE_FUZZ_CASES", "8"))
PROGRAMS = sorted(p.name for p in EXAMPLES.glob("*.jac") if p.is_file()) + ["todo/app.jac"]


def signed_in_headers(client: Any) -> dict[str, str]:
    """A bearer token of a fresh user, so protected operations get past 401."""
    body = {"email": unique_email("fuzz"), "password": PASSWORD}
    assert client.post("/user/register", json=body).status_code == 201
    token = client.post("/user/login", json=body).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def fuzz(strategy: Any, call: Callable[[Any], Any], failures: list[str]) -> None:
    """Run `CASES` generated cases through `call`, recording every 5xx."""

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            response = call(case)
        except requests.Timeout:
            # A valid request for a lot of work (`count: 50000`) is slow, not a 5xx;
            # walker deadlines are the executor's business and tested there.
            return
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"body={case.body!r:.200} query={case.query!r:.200} answer={response.text[:300]}"
            )

    try:
        run()
    except Unsatisfiable:
        pass  # e.g. no parameters to make invalid: nothing to generate in this mode


@pytest.mark.parametrize("program", PROGRAMS)
def test_no_generated_request_gets_a_5xx(
    program: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app_path = EXAMPLES / program
    env = dict(FAST_ENV)
    if "kvstore" in program:  # its walkers open MongoDB and Redis stores
        env["MONGODB_URI"] = request.getfixturevalue("mongo_server")
        env["REDIS_URL"] = request.getfixturevalue("redis_server")
    with TestApp(app_path, tmp_path / "data", env=env) as client:
        headers = signed_in_headers(client)
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, "the schema lists operations"
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # Signed in for valid requests; negative ones may drop or mangle headers.
                extra = headers if mode is GenerationMode.POSITIVE else {}
                fuzz(
                    operation.as_strategy(generation_mode=mode),
                    lambda case, extra=extra: case.call(headers=extra, timeout=5),
                    failures,
                )
    assert not failures, "\n".join(failures[:20])

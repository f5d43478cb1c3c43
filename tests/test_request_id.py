"""X-Request-Id: accepted or generated, on every response and in every error body."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

GENERATED = re.compile(r"^[0-9a-f]{32}$")
ALICE = {"X-Test-User": "alice"}


def check(response: Any, sent: str | None = None) -> str:
    """The response's id: present, well-formed, the sent one if any, and the body's too."""
    rid = response.headers.get("x-request-id")
    assert rid, f"no X-Request-Id on {response.status_code}"
    if sent is not None:
        assert rid == sent
    else:
        assert GENERATED.match(rid), rid
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and "meta" in body:
            assert body["meta"]["request_id"] == rid
    return rid


def test_success_gets_a_generated_id_in_header_and_body(kernel_client: TestClient) -> None:
    response = kernel_client.post("/walker/typed", json={"count": 1})
    assert response.status_code == 200
    assert response.json()["meta"]["request_id"] == check(response)


def test_every_request_gets_its_own_id(kernel_client: TestClient) -> None:
    ids = {check(kernel_client.post("/walker/items")) for _ in range(5)}
    assert len(ids) == 5


def test_a_sane_client_id_is_kept(kernel_client: TestClient) -> None:
    for sent in ("abc-123", "trace.id:42_x", "A" * 128):
        response = kernel_client.post("/walker/items", headers={"X-Request-Id": sent})
        check(response, sent)


@pytest.mark.parametrize("sent", ["", "has space", "A" * 129, "semi;colon", 'quote"d', "ü"])
def test_an_unsafe_client_id_is_replaced(kernel_client: TestClient, sent: str) -> None:
    response = kernel_client.post(
        "/walker/items",
        headers=[("X-Request-Id", sent.encode("utf-8"))],  # type: ignore[list-item]
    )
    assert response.status_code == 200
    assert check(response) != sent


def test_validation_error(kernel_client: TestClient) -> None:
    response = kernel_client.post(
        "/walker/typed", json={"count": "x"}, headers={"X-Request-Id": "r-422"}
    )
    assert response.status_code == 422
    check(response, "r-422")
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_walker_crash(kernel_client: TestClient) -> None:
    response = kernel_client.post("/walker/make_item", json={"name": "x", "fail": True})
    assert response.status_code == 500
    check(response)
    assert response.json()["error"]["code"] == "EXECUTION_ERROR"


def test_unauthenticated(kernel_client: TestClient) -> None:
    response = kernel_client.post("/walker/mine", headers={"X-Request-Id": "r-401"})
    assert response.status_code == 401
    check(response, "r-401")


def test_not_found(kernel_client: TestClient) -> None:
    for method, path in (("POST", "/walker/no_such"), ("GET", "/nowhere"), ("POST", "/")):
        response = kernel_client.request(method, path, headers={"X-Request-Id": "r-404"})
        assert response.status_code == 404
        check(response, "r-404")
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_method_not_allowed(kernel_client: TestClient) -> None:
    response = kernel_client.get("/walker/items")
    assert response.status_code == 405
    check(response)


def test_bad_node_id(kernel_client: TestClient) -> None:
    response = kernel_client.post("/walker/bump/not-a-node")
    assert response.status_code == 422
    check(response)


def test_payload_too_large_by_content_length(kernel_client: TestClient) -> None:
    body = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = kernel_client.post(
        "/walker/make_item",
        content=body,
        headers={"content-type": "application/json", "X-Request-Id": "r-413"},
    )
    assert response.status_code == 413
    check(response, "r-413")
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_payload_too_large_when_streamed(kernel_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = kernel_client.post(
        "/walker/make_item", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    check(response)


def test_non_envelope_routes_carry_it_too(kernel_client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        response = kernel_client.get(path, headers={"X-Request-Id": "r-plain"})
        assert response.status_code == 200, path
        check(response, "r-plain")


def test_traverse_and_auth_errors_carry_it(kernel_client: TestClient) -> None:
    response = kernel_client.post(
        "/traverse", json={"depth": "x"}, headers={**ALICE, "X-Request-Id": "r-t"}
    )
    assert response.status_code == 422
    check(response, "r-t")
    bad_credential = kernel_client.post("/walker/mine", headers={"X-Test-User": "!bad"})
    assert bad_credential.status_code == 401
    check(bad_credential)

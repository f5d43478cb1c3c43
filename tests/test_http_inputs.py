"""Routing, decoding and every bad input: status, error code and the fields named."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

ALICE = {"X-Test-User": "alice"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["ok"] is False and body["type"] == "error" and body["data"] is None
    assert body["meta"]["extra"]["http_status"] == response.status_code
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def bad_fields(response: Any) -> set[str]:
    return {str(d["loc"][-1]) for d in error_of(response)["details"]}


def reports(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["reports"])


def test_typed_fields_are_converted_and_defaults_applied(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/typed", json={"count": 3, "tags": ["a", "b"], "meta": {"k": 1}})
    assert reports(r) == [
        {"count": 3, "ratio": 0.5, "flag": False, "tags": ["a", "b"], "meta": {"k": 1}, "note": None}
    ]
    result = r.json()["data"]["result"]
    assert result["_jac_type"] == "typed" and result["_jac_archetype"] == "walker"
    assert len(result["_jac_id"]) == 32
    assert "restspec" not in result


def test_none_default_field_is_optional_and_accepts_a_value(kernel_client: TestClient) -> None:
    assert reports(kernel_client.post("/walker/typed", json={"count": 1}))[0]["note"] is None
    assert reports(kernel_client.post("/walker/typed", json={"count": 1, "note": "x"}))[0]["note"] == "x"


def test_int_accepts_integer_float_field(kernel_client: TestClient) -> None:
    assert reports(kernel_client.post("/walker/typed", json={"count": 1, "ratio": 2}))[0]["ratio"] == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"count"}),
        ({"count": "three"}, {"count"}),
        ({"count": "3.5"}, {"count"}),
        ({"count": 1, "flag": "maybe"}, {"flag"}),
        ({"count": 1, "tags": "a"}, {"tags"}),
        ({"count": 1, "tags": [1]}, {"tags"}),
        ({"count": 1.5, "extra": 0, "meta": []}, {"count", "meta"}),  # extra: ignored
    ],
)
def test_bad_fields_are_422_naming_every_field(
    kernel_client: TestClient, body: dict[str, Any], fields: set[str]
) -> None:
    r = kernel_client.post("/walker/typed", json=body)
    assert r.status_code == 422
    assert error_of(r)["code"] == "VALIDATION_ERROR"
    assert bad_fields(r) == fields


def test_invalid_json_is_422_json_invalid(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/typed", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "VALIDATION_ERROR" and err["details"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"3"])
def test_non_object_body_is_422(kernel_client: TestClient, raw: bytes) -> None:
    r = kernel_client.post("/walker/typed", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert error_of(r)["details"][0]["loc"] == ["body"]


def test_wrong_content_type_is_415(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/typed", content=b"count=1", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert error_of(r)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert bad_fields(r) == {"content-type"}


def test_empty_body_means_no_fields(kernel_client: TestClient) -> None:
    assert reports(kernel_client.post("/walker/items")) == [[]]


def test_body_over_limit_is_413_and_runs_nothing(kernel_client: TestClient) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}'
    r = kernel_client.post("/walker/make_item", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "PAYLOAD_TOO_LARGE"
    assert reports(kernel_client.post("/walker/items")) == [[]]


def test_unknown_walker_is_404_not_405(kernel_client: TestClient) -> None:
    for path in ("/walker/nope", "/function/nope", "/nothing/here"):
        r = kernel_client.post(path, json={})
        assert r.status_code == 404 and error_of(r)["code"] == "NOT_FOUND"
        assert error_of(r)["message"] == f"No route for {path}"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-request-id"] and r.headers["x-content-type-options"] == "nosniff"


def test_wrong_method_is_405(kernel_client: TestClient) -> None:
    r = kernel_client.get("/walker/typed")
    assert r.status_code == 405 and error_of(r)["code"] == "METHOD_NOT_ALLOWED"
    assert error_of(r)["message"] == "GET is not allowed here"
    assert r.headers["allow"] == "POST"
    r = kernel_client.post("/walker/get_walker", json={})
    assert r.status_code == 405


def test_malformed_node_id_is_422(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/bump/not-a-node", json={})
    assert r.status_code == 422 and bad_fields(r) == {"node_id"}


def test_unknown_node_id_is_404(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/bump/" + "ab" * 16, json={})
    assert r.status_code == 404 and error_of(r)["code"] == "NOT_FOUND"


def test_walker_error_is_500_with_message_no_traceback_and_writes_nothing(
    kernel_client: TestClient,
) -> None:
    r = kernel_client.post("/walker/make_item", json={"name": "doomed", "fail": True})
    assert r.status_code == 500
    err = error_of(r)
    assert err["code"] == "EXECUTION_ERROR"
    assert "failed on purpose" in err["message"]
    assert "Traceback" not in r.text and "/work" not in r.text and ".py" not in r.text
    assert "doomed" not in str(reports(kernel_client.post("/walker/items")))


def test_function_error_is_500(kernel_client: TestClient) -> None:
    r = kernel_client.post("/function/explode", json={})
    assert r.status_code == 500 and "function exploded" in error_of(r)["message"]


def test_protected_walker_and_function_need_a_principal(kernel_client: TestClient) -> None:
    for path in ("/walker/mine", "/function/protected_fn"):
        r = kernel_client.post(path, json={})
        assert r.status_code == 401 and error_of(r)["code"] == "UNAUTHORIZED"
        assert r.headers["www-authenticate"] == "Bearer"
        assert kernel_client.post(path, json={}, headers=ALICE).status_code == 200


def test_invalid_credential_is_401_even_on_public_walker(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/typed", json={"count": 1}, headers={"X-Test-User": "!forged"})
    assert r.status_code == 401


def test_private_and_special_protocol_walkers_have_no_walker_route(kernel_client: TestClient) -> None:
    for path in ("/walker/hidden_walker", "/function/secret_fn", "/walker/hooked", "/walker/socketed"):
        assert kernel_client.post(path, json={}, headers=ALICE).status_code == 404


def test_function_defaults_and_types(kernel_client: TestClient) -> None:
    r = kernel_client.post("/function/add", json={"a": 5})
    assert r.json()["data"]["result"] == 7
    r = kernel_client.post("/function/greet", json={"loud": True})
    assert r.json()["data"]["result"] == "hello world!"
    r = kernel_client.post("/function/add", json={"a": "five"})
    assert r.status_code == 422 and bad_fields(r) == {"a"}


def test_get_restspec_reads_query_string_with_types(kernel_client: TestClient) -> None:
    r = kernel_client.get("/walker/get_walker", params={"q": "hi", "n": "4"})
    assert reports(r) == [{"q": "hi", "n": 4}]
    r = kernel_client.get("/walker/get_walker", params={"n": "four"})
    assert r.status_code == 422 and bad_fields(r) == {"n"}
    assert kernel_client.get("/function/get_add", params={"a": "4"}).json()["data"]["result"] == 7


def test_custom_path_with_param_fills_field_and_replaces_default(kernel_client: TestClient) -> None:
    r = kernel_client.get("/items/widget", params={"limit": "2"})
    assert reports(r) == [{"name": "widget", "limit": 2}]
    assert kernel_client.get("/walker/item_by_name").status_code == 404


def test_envelope_opt_out_returns_bare_reports(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/bare")
    assert r.status_code == 200 and r.json() == [1, "two"]


def test_enums_render_as_values(kernel_client: TestClient) -> None:
    assert reports(kernel_client.post("/walker/colors")) == [["red", "green"]]


def test_spawn_on_node_and_read_access(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/make_item", json={"name": "thing"}, headers=ALICE)
    node_id = reports(r)[0][-1]["_jac_id"]
    r = kernel_client.post(f"/walker/bump/{node_id}", json={"by": 3}, headers=ALICE)
    assert reports(r)[0]["qty"] == 3
    # Another user, and the anonymous guest, cannot even see it.
    for headers in ({"X-Test-User": "bob"}, {}):
        r = kernel_client.post(f"/walker/bump/{node_id}", json={}, headers=headers)
        assert r.status_code == 404
    dashed = f"{node_id[:8]}-{node_id[8:12]}-{node_id[12:16]}-{node_id[16:20]}-{node_id[20:]}"
    assert reports(kernel_client.post(f"/walker/bump/{dashed}", json={}, headers=ALICE))[0]["qty"] == 4


def test_guests_share_one_root_and_users_have_their_own(kernel_client: TestClient) -> None:
    kernel_client.post("/walker/make_item", json={"name": "g1"})
    assert "g1" in reports(kernel_client.post("/walker/items"))[0]
    assert "g1" not in reports(kernel_client.post("/walker/items", headers={"X-Test-User": "carol"}))[0]


def test_request_id_is_echoed_or_generated(kernel_client: TestClient) -> None:
    r = kernel_client.post("/walker/items", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["meta"]["request_id"] == "abc-123"
    r = kernel_client.post("/walker/items", headers={"X-Request-Id": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces" and len(r.headers["x-request-id"]) == 32

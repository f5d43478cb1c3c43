"""Our msgspec-based rendering equals jaclang's `Serializer.serialize(x, api_mode=True)`."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jaclang.runtimelib.serializer import Serializer

from jacscale_core import codec
from jacscale_core import executor as executor_module
from jacscale_core.errors import ApiError
from jacscale_core.testing import TestApp
from tests.fixtures.servers import TEST_APPS


def test_corpus_matches_jaclang_serializer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Compared where the executor renders: inside the request, graph still loaded.
    compared: list[str] = []
    original = executor_module._result

    def compare_then_render(endpoint: Any, value: Any, ctx: Any) -> Any:
        corpus = dict(value.reports[0])
        corpus["walker"] = value
        assert set(corpus) >= {"node", "edge", "obj", "nested", "enum", "uuid", "date", "walker"}
        for key, item in corpus.items():
            expected = Serializer.serialize(item, api_mode=True)
            ours = codec.to_jsonable(item)
            if key == "walker":
                expected.pop("restspec", None)  # jac-scale leaked it; we do not
                expected["reports"][0]["bytes"] = "YWI="  # base64, as below
            if key == "bytes":
                assert expected == "b'ab'"  # jaclang's str() fallback
                expected = "YWI="  # ours, deliberately: base64
            assert ours == expected, key
            # And it survives our JSON encoder unchanged.
            assert msgspec.json.decode(codec.encode(ours)) == msgspec.json.decode(
                msgspec.json.encode(expected)
            )
            compared.append(key)
        return original(endpoint, value, ctx)

    monkeypatch.setattr(executor_module, "_result", compare_then_render)
    with TestApp(TEST_APPS / "codec_app.jac", tmp_path) as client:
        response = client.post("/walker/corpus", json={})
    assert response.status_code == 200, response.text
    assert "walker" in compared and "node" in compared
    body = response.json()["data"]["reports"][0]
    assert body["node"]["_jac_archetype"] == "node" and body["node"]["name"] == "a"
    assert body["edge"]["_jac_archetype"] == "archetype" and body["edge"]["since"] == 2021
    assert body["obj"]["_jac_archetype"] == "archetype"
    assert body["enum"] == 2 and body["uuid"] == "12345678-1234-5678-1234-567812345678"
    assert body["nested"][0][1] == {"k": [1, 2]}


def test_bytes_are_base64_not_a_python_literal() -> None:
    blob = bytes(range(256)) * 4
    rendered = codec.to_jsonable({"file": blob, "view": memoryview(b"\x00\xff"), "ba": bytearray(b"hi")})
    assert rendered == {"file": base64.b64encode(blob).decode(), "view": "AP8=", "ba": "aGk="}
    # 4 characters per 3 bytes, where str() took up to 4 per byte.
    assert len(rendered["file"]) == 4 * -(-len(blob) // 3)


def test_error_envelope_shape() -> None:
    err = ApiError("VALIDATION_ERROR", "bad", details=[{"loc": ["body", "x"], "msg": "m", "type": "t"}])
    env = codec.error_envelope(err, "rid")
    assert env == {
        "ok": False,
        "type": "error",
        "data": None,
        "error": {"code": "VALIDATION_ERROR", "message": "bad",
                  "details": [{"loc": ["body", "x"], "msg": "m", "type": "t"}]},
        "meta": {"extra": {"http_status": 422}, "request_id": "rid"},
    }  # fmt: skip

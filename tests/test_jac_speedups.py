"""Hook dispatch patch (jacscale_core.jaclang_patches.hook_dispatch): jaclang's hooks are called without per-call signature binding."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from jacscale_core.testing import TestApp
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import EXAMPLES

TODO = EXAMPLES / "todo" / "app.jac"


def test_walkers_make_no_slow_hook_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`report` and `[-->]` in compiled Jac code reach the fast proxies too."""
    with TestApp(TODO, tmp_path, plugins=[HeaderAuth()]) as c:
        headers = {"X-Test-User": "alice"}
        assert c.post("/walker/add_todo", json={"title": "a"}, headers=headers).status_code == 200
        slow_calls: list[str] = []
        original = inspect.Signature.bind_partial

        def spy(self: inspect.Signature, *args: Any, **kwargs: Any) -> inspect.BoundArguments:
            slow_calls.append(str(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(inspect.Signature, "bind_partial", spy)
        for path in ("/walker/ping", "/walker/list_todos", "/walker/add_todo"):
            body = {"title": "b"} if path.endswith("add_todo") else {}
            response = c.post(path, json=body, headers=headers)
            assert response.status_code == 200, response.text
        assert slow_calls == []

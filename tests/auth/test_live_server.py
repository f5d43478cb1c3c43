"""Against a real server (hypercorn, real sockets): the reference's curl examples as
written, docs/auth.md's example, and token checks on WebSockets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from jacscale_core.testing import running_server
from tests.auth.helpers import EXAMPLES, FAST_ENV, PASSWORD, REPO, TODO_APP, bearer, write_app

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
)

SEED_WALKER = """
walker my_walker {
    can go with Root entry { report {"hello": "you"}; }
}
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("curl")
    sockets = (EXAMPLES / "04_websockets.jac").read_text()
    app = write_app(root / "app", TODO_APP.read_text() + SEED_WALKER + sockets)
    with running_server(app, root / "data", env=FAST_ENV) as url:
        yield url


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )


def curl(base: str, example: str) -> dict[str, Any]:
    """Run one of the reference's commands, with only the host:port replaced."""
    out = sh(
        example.replace("http://localhost:8000", base) + " --silent --show-error --max-time 20"
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_seed_curl_examples_work_as_written(base: str) -> None:
    registered = curl(
        base,
        "curl -X POST http://localhost:8000/user/register \\\n"
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{"email": "user@example.com", "password": "secret"}\'',
    )
    assert registered["email"] == "user@example.com"
    answer = curl(
        base,
        "curl -X POST http://localhost:8000/user/login \\\n"
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{"email": "user@example.com", "password": "secret"}\'',
    )
    assert answer["token_type"] == "bearer" and answer["access_token"].startswith("eyJ")
    result = curl(
        base,
        "curl -X POST http://localhost:8000/walker/my_walker \\\n"
        f'  -H "Authorization: Bearer {answer["access_token"]}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        "  -d '{}'",
    )
    assert result["ok"] is True and result["data"]["reports"] == [{"hello": "you"}]
    denied = curl(
        base,
        "curl -X POST http://localhost:8000/walker/my_walker -H \"Content-Type: application/json\" -d '{}'",
    )
    assert denied["error"]["code"] == "UNAUTHORIZED"


def test_docs_try_it_block_runs(base: str) -> None:
    text = (REPO / "docs" / "auth.md").read_text()
    section = text.split("## Try it", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    script = block.group(1).replace("BASE=http://localhost:8000", f"BASE={base}")
    script = script.replace("user@example.com", "docs-reader@example.com")
    check = '\necho; echo "old-token-status=$(curl -s -o /dev/null -w "%{http_code}" $BASE/user/me -H "Authorization: Bearer $TOKEN")"\n'
    out = sh(script + check)
    assert out.returncode == 0, out.stderr
    assert '"email":"docs-reader@example.com"' in out.stdout
    assert '"title":"write docs"' in out.stdout
    assert '"Password updated"' in out.stdout
    assert "old-token-status=401" in out.stdout, "the password change ended the old token"


def test_websocket_access_levels(base: str) -> None:
    ws_base = base.replace("http://", "ws://")
    email = "sockets@example.com"
    assert (
        httpx.post(f"{base}/user/register", json={"email": email, "password": PASSWORD}).status_code
        == 201
    )
    token = httpx.post(f"{base}/user/login", json={"email": email, "password": PASSWORD}).json()[
        "access_token"
    ]

    def ask(url: str, message: dict[str, Any]) -> dict[str, Any]:
        with connect(url, open_timeout=10, close_timeout=5) as ws:
            ws.send(json.dumps(message))
            return dict(json.loads(ws.recv(timeout=10)))

    assert ask(f"{ws_base}/ws/EchoMessage", {"message": "hi"})["ok"] is True, (
        ":pub sockets are open"
    )
    refused = ask(f"{ws_base}/ws/PrivateEcho", {"message": "hi"})
    assert refused["error"]["code"] == "UNAUTHORIZED"
    assert ask(f"{ws_base}/ws/PrivateEcho", {"message": "hi", "token": token})["ok"] is True
    forged = ask(f"{ws_base}/ws/PrivateEcho", {"message": "hi", "token": token[:-3] + "abc"})
    assert forged["error"]["message"] == "Invalid or expired token"
    assert ask(f"{ws_base}/ws/PrivateEcho?token={token}", {"message": "hi"})["ok"] is True
    with connect(f"{ws_base}/ws/PrivateEcho?token=garbage", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["error"]["message"] == "Invalid or expired token"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    changed = httpx.put(
        f"{base}/user/password",
        json={"current_password": PASSWORD, "new_password": "changed-pw"},
        headers=bearer(token),
    )
    assert changed.status_code == 200
    with connect(f"{ws_base}/ws/PrivateEcho?token={token}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "UNAUTHORIZED", (
            "revoked tokens too"
        )

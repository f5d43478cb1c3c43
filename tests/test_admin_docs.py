"""The curl blocks of docs/admin.md and docs/auth.md (account flows) run as written
against a real server (and a real SMTP server for the reset email)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from jacscale_core.testing import running_server
from tests.auth.helpers import FAST_ENV, REPO, write_app
from tests.support.smtp_server import SmtpServer, smtp_server

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
)
SOURCE = (REPO / "examples" / "12_graph_explorer.jac").read_text()
# Lines that set up the reader's own machine; the test has its own server and SMTP server.
SETUP = (".venv/bin/python -m aiosmtpd", "mkdir ", "printf ", ".venv/bin/jacscale serve")
TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{40,})\r?$", re.MULTILINE)


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("docsmtp")) as server:
        yield server


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[str]:
    root = tmp_path_factory.mktemp("docs")
    app = write_app(root, SOURCE, smtp.toml())
    done = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "admin", "create", str(app),
         "--email", "admin@example.com", "--data-dir", str(root / "data"), "--password-stdin"],
        input="admin-pass-123\n", capture_output=True, text=True, timeout=120,
        env={**os.environ, **FAST_ENV},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with running_server(app, root / "data", env=FAST_ENV) as url:
        yield url


def blocks(doc: str, after: str) -> list[str]:
    text = (REPO / "docs" / doc).read_text().split(after, 1)[1]
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def run(block: str, base: str, env: dict[str, str] | None = None) -> str:
    """Run a docs block (minus the reader's own set-up lines) against `base`; its stdout."""
    lines = [ln for ln in block.splitlines() if not ln.startswith(SETUP)]
    script = "\n".join(lines)
    script = re.sub(r"^(B|BASE)=http://localhost:8000$", rf"\1={base}", script, flags=re.M)
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120,
        env={**os.environ, "B": base, "BASE": base, **(env or {})},  # as the reader's shell has them
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_admin_try_it_block(base: str) -> None:
    out = run(blocks("admin.md", "## Try it")[0], base)
    assert '"message":"This account is disabled"' in out
    assert '"role":"admin"' in out and '"disabled":false' in out
    assert '"email_sent":true' in out  # Bob has an email and a mailer is configured
    assert '"plugins.scale.email"' in out and "smtp-pass-123" not in out


def test_auth_reset_flow_blocks(base: str, smtp: SmtpServer) -> None:
    first, second = blocks("auth.md", "### Try the reset flow")[:2]
    before = len(smtp.messages)
    out = run(first, base)
    assert '"status":"ok"' in out
    token = TOKEN_RE.search(smtp.wait_for(before + 1)[-1].get_content())
    assert token is not None
    second = second.replace(
        "RESET_TOKEN=paste-the-token-from-the-email", f"RESET_TOKEN={token.group(1)}"
    )
    out = run(second, base)
    assert '"status":"password_reset"' in out
    assert '"profile":{"firstname":"Ada"}' in out
    assert '"status":"already_verified"' in out


def test_graph_explorer_blocks(base: str) -> None:
    try_it, data = blocks("graph-explorer.md", "## Try it")[:2]
    out = run(try_it + "\n" + data, base)
    assert '"reports":["seeded"]' in out
    assert '"version": "1.0"' in out and '"label": "Person(age=36, name=\'Ada\')"' in out

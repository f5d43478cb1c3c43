"""The `jacscale_send_email` hook and the built-in SMTP mailer, against real SMTP servers."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from jacscale_core.plugins import hookimpl
from jacscale_core.testing import TestApp, free_port
from jacscale_ext.mailer import EmailConfig, EmailMessage, mask_address, smtp_send
from tests.auth.helpers import FAST_ENV, bearer, login, register, unique_email, write_app
from tests.support.smtp_server import SmtpServer, _Handler, make_certificate, smtp_server

SOURCE = (Path(__file__).resolve().parents[1] / "examples" / "12_graph_explorer.jac").read_text()


class Capture:
    """A mail plugin that takes every message (answers before the built-in mailer)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    @hookimpl
    async def jacscale_send_email(self, message: EmailMessage) -> bool:
        self.messages.append(message)
        return True


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("mail")) as server:
        yield server


def test_a_plugin_answers_before_the_builtin_mailer(tmp_path: Path, smtp: SmtpServer) -> None:
    capture = Capture()
    app = write_app(tmp_path, SOURCE, smtp.toml())
    before = len(smtp.messages)
    with TestApp(app, tmp_path / "data", env=FAST_ENV, plugins=[capture]) as c:
        email = unique_email("plugin")
        register(c, email)
        resp = c.post("/user/send-verification", headers=bearer(login(c, email)["access_token"]))
        assert resp.json()["email_sent"] is True
    assert [m.to for m in capture.messages] == [email]
    assert capture.messages[0].purpose == "verify_email"
    assert len(smtp.messages) == before  # the SMTP mailer was not asked


def test_smtp_starttls_with_auth(smtp: SmtpServer) -> None:
    config = EmailConfig(host="127.0.0.1", port=smtp.port, username="mailer",
                         password="smtp-pass-123", ca_file=str(smtp.ca_file),
                         from_addr="me@example.com")  # fmt: skip
    before = len(smtp.messages)
    smtp_send(config, EmailMessage("you@example.com", "Hi", "body text", "test"))
    got = smtp.wait_for(before + 1)[-1]
    assert got["Subject"] == "Hi" and got["From"] == "me@example.com"
    assert got.get_content().strip() == "body text"


def test_smtp_refuses_an_untrusted_certificate(smtp: SmtpServer) -> None:
    config = EmailConfig(host="127.0.0.1", port=smtp.port, username="mailer", password="x")
    with pytest.raises(ssl.SSLError):
        smtp_send(config, EmailMessage("you@example.com", "Hi", "body", "test"))


def test_implicit_tls(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer("127.0.0.1", free_port(), cert)
    controller = Controller(_Handler(server), hostname="127.0.0.1", port=server.port,
                            ssl_context=context)  # fmt: skip
    controller.start()
    try:
        config = EmailConfig(host="127.0.0.1", port=server.port, security="tls",
                             ca_file=str(cert))  # fmt: skip
        smtp_send(config, EmailMessage("tls@example.com", "Over TLS", "body", "test"))
        assert server.wait_for(1)[0]["To"] == "tls@example.com"
    finally:
        controller.stop()


def test_unreachable_mailer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    toml = f'[plugins.scale.email]\nhost = "127.0.0.1"\nport = {free_port()}\ntimeout_seconds = 2\n'
    app = write_app(tmp_path, SOURCE, toml)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        email = unique_email("down")
        register(c, email)
        token = login(c, email)["access_token"]
        with caplog.at_level(logging.INFO):
            sent = c.post("/user/send-verification", headers=bearer(token))
            forgot = c.post("/user/forgot-password", json={"email": email})
    assert sent.status_code == 503
    assert forgot.status_code == 200  # the answer never depends on the account or the mailer
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed via 127.0.0.1" in text and email not in text


def test_bad_security_value_stops_start_up(tmp_path: Path) -> None:
    app = write_app(tmp_path, SOURCE, '[plugins.scale.email]\nsecurity = "ssl"\n')
    with pytest.raises(ValueError, match="security must be"):
        with TestApp(app, tmp_path / "data", env=FAST_ENV):
            pass


def test_password_env(tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = smtp.toml().replace('password = "smtp-pass-123"', 'password_env = "TEST_SMTP_PASSWORD"')
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "smtp-pass-123")
    app = write_app(tmp_path, SOURCE, toml)
    before = len(smtp.messages)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        email = unique_email("envpw")
        register(c, email)
        resp = c.post("/user/send-verification", headers=bearer(login(c, email)["access_token"]))
        assert resp.json()["email_sent"] is True
    assert smtp.wait_for(before + 1)[-1]["To"] == email


def test_mask_address() -> None:
    assert mask_address("bob@example.com") == "b***@example.com"
    assert mask_address("nonsense") == "***"

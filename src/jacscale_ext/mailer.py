"""Outgoing email: the `jacscale_send_email` hook and the built-in SMTP mailer.

Account flows (password reset, email verification) hand an `EmailMessage` to
`send_email(app, message)`, which asks every `jacscale_send_email`
implementation in pluggy's order and stops at the first that answers True.
The built-in implementation answers last: it speaks SMTP (STARTTLS or TLS,
optional login) when `[plugins.scale.email] host` is set, and otherwise logs
that the message was not sent: recipient (masked), subject and purpose, never
the body, which holds a one-time token.

smtplib blocks, so a send runs in a worker thread, bounded by `timeout_seconds`.
"""

from __future__ import annotations

import email.message
import email.utils
import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from jacscale_core.context import AppContext
from jacscale_core.plugins import await_me_maybe, hookimpl, hookspec

log = logging.getLogger("jacscale.email")

SECTION = "plugins.scale.email"


class EmailConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.email]`: the built-in SMTP mailer (off while `host` is empty)."""

    host: str = ""
    port: int = 587
    security: str = "starttls"  # "starttls" | "tls" (implicit, port 465) | "none"
    username: str = ""
    password: str = ""
    password_env: str = ""  # read the password from this environment variable
    from_addr: str = "noreply@localhost"
    timeout_seconds: float = 10.0
    ca_file: str = ""  # trust this CA bundle instead of the system's (a private mail relay)


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One plain-text message. `purpose` ("password_reset", "verify_email") is for logs."""

    to: str
    subject: str
    text: str
    purpose: str = ""


def mask_address(address: str) -> str:
    """`bob@example.com` -> `b***@example.com` (log lines name no full address)."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def config_of(app: AppContext) -> EmailConfig:
    """The email section with `password_env` resolved; a bad `security` is refused."""
    config: EmailConfig = app.config_section(SECTION)
    if config.security not in ("starttls", "tls", "none"):
        raise ValueError(
            f"[{SECTION}] security must be 'starttls', 'tls' or 'none', not {config.security!r}"
        )
    if config.password_env and not config.password:
        env = getattr(app.settings, "env", None) or os.environ
        config = msgspec.structs.replace(config, password=env.get(config.password_env, ""))
    return config


def _mime(config: EmailConfig, message: EmailMessage) -> email.message.EmailMessage:
    mime = email.message.EmailMessage()
    mime["From"] = config.from_addr
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(localtime=False)
    mime["Message-ID"] = email.utils.make_msgid()
    mime.set_content(message.text)
    return mime


def smtp_send(config: EmailConfig, message: EmailMessage) -> None:
    """Deliver over SMTP (blocking: call from a worker thread); raise on any failure."""
    context = ssl.create_default_context(cafile=config.ca_file or None)
    timeout = config.timeout_seconds
    smtp: smtplib.SMTP
    if config.security == "tls":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if config.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, config.password)
        smtp.send_message(_mime(config, message))


async def send_email(app: AppContext, message: EmailMessage) -> bool:
    """Give `message` to the first `jacscale_send_email` implementation that takes it.

    True when one delivered it. A mailer's failure is logged (without the body)
    and raised: the caller decides what the client sees.
    """
    for impl in reversed(app.pm.hook.jacscale_send_email.get_hookimpls()):  # pluggy's order
        kwargs: dict[str, Any] = {"app": app, "message": message}
        answer = await await_me_maybe(impl.function(**{k: kwargs[k] for k in impl.argnames}))
        if answer:
            return True
    return False


class MailerHooks:
    """The mailer's own hook, added through `jacscale_add_hookspecs`."""

    @staticmethod
    @hookspec
    def jacscale_send_email(app: AppContext, message: Any) -> Any:
        """Deliver one email (an `EmailMessage` with to, subject, text and purpose).

        Return True when this plugin delivered it; False or None passes it on. May be
        awaitable. Implementations are asked in pluggy's order and the first True
        stops; the built-in SMTP mailer answers last. Raise when delivery fails.
        """


@hookimpl
def jacscale_add_hookspecs(pm: Any) -> None:
    """jacscale_send_email."""
    pm.add_hookspecs(MailerHooks)


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.email]."""
    return {SECTION: EmailConfig}


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Check `[plugins.scale.email]` once, so a bad value stops start-up, not a request."""
    config_of(app)


@hookimpl(trylast=True)
async def jacscale_send_email(app: AppContext, message: EmailMessage) -> bool:
    """The built-in mailer: SMTP when configured, else a log line without the body."""
    config = config_of(app)
    where = mask_address(message.to)
    if not config.host:
        log.warning(
            "email not sent (no mailer: set [plugins.scale.email] host): "
            "to=%s subject=%r purpose=%s",
            where, message.subject, message.purpose,
        )  # fmt: skip
        return False
    try:
        with anyio.fail_after(config.timeout_seconds * 3):
            await anyio.to_thread.run_sync(smtp_send, config, message, abandon_on_cancel=True)
    except (OSError, smtplib.SMTPException, TimeoutError) as exc:
        log.error(
            "email to %s (purpose %s) failed via %s:%d: %s",
            where, message.purpose, config.host, config.port, type(exc).__name__,
        )  # fmt: skip
        raise
    log.info("email sent to %s via %s:%d (purpose %s)", where, config.host, config.port,
             message.purpose)  # fmt: skip
    return True

"""`jacscale admin create app.jac --email ...`: make an admin account (there is no default one).

The password is prompted for twice on a terminal, or read as the first line of
stdin (`--password-stdin`, or whenever stdin is not a terminal). An existing
account with that email is promoted to admin and keeps its password. Uses the
app's own store and auth settings (jac.toml, JWT_*, JAC_DATA_PATH, `--data-dir`),
so run it where the server's data lives. The change is written to the
`jacscale.audit` log.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from typing import Any

audit = logging.getLogger("jacscale.audit")


def read_password(from_stdin: bool) -> str:
    """The new admin's password, from stdin or a double prompt."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password for the admin: ")
    if first != getpass.getpass("Repeat it: "):
        raise SystemExit("error: the passwords differ")
    return first


async def create_admin(args: argparse.Namespace) -> str:
    """Create or promote the account; returns a one-line summary."""
    from jacscale_core.app import build_context, shutdown, startup
    from jacscale_core.errors import ApiError
    from jacscale_ext.auth.schemas import parse_register
    from jacscale_ext.auth.state import get_state
    from jacscale_ext.auth.users import identity_key

    cli: dict[str, Any] = {"data_dir": args.data_dir} if args.data_dir else {}
    ctx = build_context(args.app, cli=cli)
    await startup(ctx)
    try:
        state = get_state(ctx)
        store = state.accounts.store
        existing = await asyncio.to_thread(store.find, identity_key("email", args.email))
        prior = "new" if existing is None else existing.role
        if existing is None:
            body = {"email": args.email, "password": read_password(args.password_stdin)}
            try:
                user = await state.accounts.register(parse_register(body, state.rules))
            except ApiError as exc:
                raise SystemExit(f"error: {exc.message}") from None
            verb = "created"
        else:
            user, verb = existing, "promoted"
        await asyncio.to_thread(store.update, user.user_id, {"role": "admin"})
        audit.warning("role change: user %s %s -> admin by the jacscale admin command",
                      user.user_id, prior)  # fmt: skip
        return f"admin {verb}: {args.email} (user {user.user_id})"
    finally:
        await shutdown(ctx)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(asyncio.run(create_admin(args)))
    return 0


def register(subparsers: Any) -> None:
    """Add `jacscale admin create`."""
    admin = subparsers.add_parser("admin", help="manage admin accounts")
    sub = admin.add_subparsers(dest="admin_command", required=True)
    create = sub.add_parser("create", help="create an admin account (or promote one)")
    create.add_argument("app", help="path to app.jac")
    create.add_argument("--email", required=True, help="the admin's email")
    create.add_argument("--data-dir", default=None, help="where the server's data lives")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")  # fmt: skip
    create.set_defaults(func=_run)

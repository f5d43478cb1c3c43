"""`jacscale db migrate|inspect|backup|restore` and `jacscale import-jac-scale`.

Each command loads the program and opens its store the way `jacscale serve`
does (jac.toml, environment, `--data-dir`), so it works on the same data,
SQLite or a store plugin's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl


def _context(args: argparse.Namespace) -> AppContext:
    from jacscale_core.app import build_context

    return build_context(args.app, cli={"data_dir": args.data_dir})


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _sqlite_path(ctx: AppContext) -> Path | None:
    from jacscale_ext.sqlite_store import SqliteGraphStore

    return ctx.store.path if isinstance(ctx.store, SqliteGraphStore) else None


def _no_builtin_backup(ctx: AppContext) -> int:
    return _fail(
        f"the store at {ctx.store.location} has no built-in backup; use its own tools"
        " (MongoDB: mongodump --uri ... / mongorestore --uri ... --drop;"
        " PostgreSQL: pg_dump -Fc ... / pg_restore --clean -d ...)"
    )


def _migrate(args: argparse.Namespace) -> int:
    from jacscale_core.migrate import migrate

    ctx = _context(args)
    try:
        report = migrate(ctx.store, ctx.executor.tier.schema)
    finally:
        ctx.store.close()
    print(f"migrated {report.migrated} record(s); {report.unchanged} already up to date")
    for name, count in sorted(report.quarantined.items()):
        print(f"quarantined (left as stored): {count} x {name}: {report.reasons[name]}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from jacscale_core.data_scan import inspect_store

    ctx = _context(args)
    try:
        report = inspect_store(ctx.store, ctx.executor.tier.schema).as_dict()
    finally:
        ctx.store.close()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    _print_inspection(report)
    return 0


def _print_inspection(report: dict[str, Any]) -> None:
    print(f"store: {report['store']}")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report["by_kind"].items()))
    print(f"records: {report['records']} ({kinds})")
    print("records per type:")
    for name, entry in sorted(report["types"].items()):
        print(f"  {name:<40} {entry['count']:>8}  {entry['bytes']:>10} bytes")
    if report["quarantined"]:
        print("quarantined (the program cannot load them; kept as stored):")
        for name, entry in sorted(report["quarantined"].items()):
            print(f"  {name:<40} {entry['count']:>8}  e.g. {entry['reasons'][0]}")
    else:
        print("quarantined: none")
    orphans = report["orphans"]
    print(
        f"orphans: {orphans['nodes']} node(s) no root reaches, {orphans['dangling_edges']} dangling edge(s)"
    )
    files = ", ".join(f"{k} {v} bytes" for k, v in sorted(report["sizes"]["files"].items()))
    print(
        f"sizes: {report['sizes']['state_bytes']} bytes of record state"
        + (f"; files: {files}" if files else "")
    )


def _backup(args: argparse.Namespace) -> int:
    from jacscale_ext.sqlite_backup import BackupError, backup

    ctx = _context(args)
    path = _sqlite_path(ctx)
    ctx.store.close()
    if path is None:
        return _no_builtin_backup(ctx)
    try:
        found = backup(path, Path(args.file).resolve())
    except BackupError as exc:
        return _fail(str(exc))
    print(
        f"backed up {found.records} record(s) and {found.documents} document(s) to {args.file} ({found.bytes} bytes)"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from jacscale_ext.sqlite_backup import BackupError, restore

    ctx = _context(args)
    path = _sqlite_path(ctx)
    ctx.store.close()
    if path is None:
        return _no_builtin_backup(ctx)
    try:
        found = restore(Path(args.file).resolve(), path, force=args.force)
    except BackupError as exc:
        return _fail(str(exc))
    print(f"restored {found.records} record(s) and {found.documents} document(s) into {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from jacscale_ext.jacscale_import import ImportRefused, import_jac_scale

    ctx = _context(args)
    try:
        report = import_jac_scale(ctx, args.source)
    except ImportRefused as exc:
        return _fail(str(exc))
    finally:
        ctx.store.close()
    for line in report.lines():
        print(line)
    return 0


@hookimpl
def jacscale_register_commands(subparsers: Any) -> None:
    """Add `db` and `import-jac-scale` to the `jacscale` command."""
    sub = subparsers
    db = sub.add_parser("db", help="migrate, inspect, back up and restore the app's data")
    db_sub = db.add_subparsers(dest="db_command", required=True)

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser = db_sub.add_parser(name, help=help_text)
        parser.add_argument("app", help="path to app.jac")
        parser.set_defaults(func=func)
        return parser

    migrate = add("migrate", "apply [plugins.scale.schema] rules to every stored record", _migrate)
    migrate.add_argument("--data-dir", default=None)
    inspect = add("inspect", "records per type, quarantined records, orphans, sizes", _inspect)
    inspect.add_argument("--data-dir", default=None)
    inspect.add_argument("--json", action="store_true", help="print JSON")
    backup = add("backup", "copy the store to FILE while servers run", _backup)
    backup.add_argument("file")
    backup.add_argument("--data-dir", default=None)
    restore = add("restore", "replace the store with the backup FILE", _restore)
    restore.add_argument("file")
    restore.add_argument("--data-dir", default=None)
    restore.add_argument("--force", action="store_true", help="replace a store that holds data")

    imp = sub.add_parser(
        "import-jac-scale", help="bring users and graphs over from jac-scale 0.2.31"
    )
    imp.add_argument("app", help="path to app.jac")
    imp.add_argument("source", help="the jac-scale project folder, or a mongodb:// URI")
    imp.add_argument("--data-dir", default=None)
    imp.set_defaults(func=_import)

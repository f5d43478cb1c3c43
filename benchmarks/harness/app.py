"""The benchmark app, and a fresh copy of it for every server start.

The app is examples/todo/app.jac followed by the reference document's examples/03_webhook.jac
and examples/04_websockets.jac, concatenated unchanged into one app.jac, so one
server process answers every workload (HTTP walkers, a function, a webhook,
WebSocket echo and broadcast). Both servers keep state beside the app (jac-scale
in <app dir>/.jac), so each start gets its own directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent.parent
SOURCES = [
    REPO_DIR / "examples" / "todo" / "app.jac",
    REPO_DIR / "examples" / "03_webhook.jac",
    REPO_DIR / "examples" / "04_websockets.jac",
]


def bench_app_source() -> str:
    """The benchmark app's source text."""
    parts = []
    for path in SOURCES:
        parts.append(
            f"# ---- from {path.relative_to(REPO_DIR)} ----\n{path.read_text().rstrip()}\n"
        )
    return "\n".join(parts)


def fresh_app_dir(workdir: Path, name: str, extra_files: dict[str, str] | None = None) -> Path:
    """A new directory `workdir/name` holding app.jac (and `extra_files`); returns it."""
    target = workdir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / "app.jac").write_text(bench_app_source())
    for filename, text in (extra_files or {}).items():
        (target / filename).write_text(text)
    return target

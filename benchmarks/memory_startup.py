"""Where a worker's start-up memory goes: RSS by stage, by mapping, by package.

Builds the benchmark app (benchmarks/harness/app.py) in a fresh directory, then,
in this process, the way a `jacscale serve` worker does: import the kernel,
`create_app`, start-up. Prints RSS after each stage, the resident set by
mapping (/proc/self/smaps: anonymous memory, the heap, each shared library)
and, with --trace, Python allocations by top-level package (tracemalloc; it
slows start-up and adds its own overhead to RSS).

    .venv/bin/python -m jacscale_core.precompile benchmarks/work/memory/app.jac  # optional: warm
    .venv/bin/python benchmarks/memory_startup.py [--trace] [--keep]

--keep reuses benchmarks/work/memory/app.jac (and so jaclang's module cache for
it) instead of a fresh copy: a fresh copy is a cold compile, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness.app import fresh_app_dir  # noqa: E402


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _mark(label: str) -> None:
    print(
        f"{label:28s} RSS {_status_mb('VmRSS'):6.1f} MB  HWM {_status_mb('VmHWM'):6.1f} MB"
        f"  modules {len(sys.modules)}",
        flush=True,
    )


def _group(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0]
    if "/src/" in path:
        return path.split("/src/")[1].split("/")[0]
    if "/lib/python3" in path:
        return "stdlib"
    return path


def _smaps_mb() -> collections.Counter[str]:
    rss: collections.Counter[str] = collections.Counter()
    name = "[anon]"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            name = _group(parts[5]) if len(parts) > 5 else "[anon]"
        elif line.startswith("Rss:"):
            rss[name] += int(line.split()[1])
    return rss


def main() -> None:
    """Measure start-up memory of the benchmark app in this process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", action="store_true", help="tracemalloc by package")
    parser.add_argument("--keep", action="store_true", help="reuse the app (warm module cache)")
    args = parser.parse_args()
    if args.trace:
        tracemalloc.start(1)
    _mark("interpreter")
    workdir = BENCH_DIR / "work"
    app_dir = workdir / "memory"
    if not (args.keep and (app_dir / "app.jac").is_file()):
        app_dir = fresh_app_dir(workdir, "memory")
        shutil.copy(BENCH_DIR / "ours.jac.toml", app_dir / "jac.toml")
    data = tempfile.mkdtemp(prefix="jacscale-memory-")
    os.environ["JAC_DATA_PATH"] = data  # this process is the worker being measured
    os.chdir(app_dir)
    from jacscale_core.app import create_app, startup

    _mark("import jacscale_core.app")
    app = create_app(str(app_dir / "app.jac"))
    _mark("create_app")
    asyncio.run(startup(app.state.jacscale))
    _mark("start-up")
    shutil.rmtree(data, ignore_errors=True)
    print(
        "llvmlite loaded:",
        "llvmlite" in sys.modules,
        "| JS generator loaded:",
        "jaclang.compiler.passes.ecmascript" in sys.modules,
    )
    smaps = _smaps_mb()
    print(f"\nresident by mapping ({sum(smaps.values()) / 1024:.1f} MB):")
    for name, kb in smaps.most_common(12):
        print(f"  {kb / 1024:6.1f} MB  {name}")
    tops = collections.Counter(m.split(".")[0] for m in sys.modules)
    print("\nmodules by package:", ", ".join(f"{k} {v}" for k, v in tops.most_common(20)))
    if args.trace:
        by: collections.Counter[str] = collections.Counter()
        for stat in tracemalloc.take_snapshot().statistics("filename"):
            by[_group(stat.traceback[0].filename)] += stat.size
        print(f"\nPython allocations (tracemalloc, {sum(by.values()) / 2**20:.1f} MB):")
        for name, size in by.most_common(15):
            print(f"  {size / 2**20:6.1f} MB  {name}")


if __name__ == "__main__":
    main()

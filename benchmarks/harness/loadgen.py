"""Load generators, each a separate process pinned to the load-generator CPU.

HTTP: wrk (one thread, N connections) with a Lua script from benchmarks/wrk/;
the script's done() writes the summary as JSON. WebSocket: wrk cannot speak it,
so harness/ws_load.py (Python asyncio, a minimal WebSocket client) runs as its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.servers import pinned

BENCH_DIR = Path(__file__).resolve().parent.parent
LUA_DIR = BENCH_DIR / "wrk"
WS_LOAD = Path(__file__).resolve().parent / "ws_load.py"
MAX_ERROR_FRACTION = 0.01  # a run with more failed requests than this is invalid


class LoadError(Exception):
    """The load generator failed (not the server: that shows up as errors in a run)."""


@dataclass
class RunResult:
    """One measured run: throughput, latency percentiles (ms), and failures."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int
    duration_s: float
    client_cpu_pct: float | None = None  # WebSocket client only: its own CPU use

    @property
    def valid(self) -> bool:
        """Whether failures stayed under MAX_ERROR_FRACTION and something completed."""
        total = self.requests + self.errors
        return self.requests > 0 and self.errors <= MAX_ERROR_FRACTION * total

    def to_json(self) -> dict[str, float | int | bool]:
        """A JSON-ready dict (includes `valid`)."""
        return {**asdict(self), "valid": self.valid}


@dataclass
class HttpRequest:
    """What wrk sends: one fixed request, or one per path in `paths` round robin."""

    method: str
    path: str
    body: bytes = b"{}"
    headers: dict[str, str] | None = None
    paths: list[str] | None = None


def wrk_result(summary: dict[str, object]) -> RunResult:
    """Turn common.lua's JSON summary into a RunResult (non-2xx count as errors)."""
    errors_map = summary["errors"]
    latency = summary["latency_us"]
    assert isinstance(errors_map, dict) and isinstance(latency, dict)
    duration_s = int(summary["duration_us"]) / 1e6  # type: ignore[call-overload]
    total = int(summary["requests"])  # type: ignore[call-overload]
    status_errors = int(errors_map["status"])
    other_errors = sum(int(errors_map[k]) for k in ("connect", "read", "write", "timeout"))
    ok = max(0, total - status_errors)
    return RunResult(
        rps=round(ok / duration_s, 1) if duration_s > 0 else 0.0,
        p50_ms=round(latency["p50"] / 1000, 2),
        p90_ms=round(latency["p90"] / 1000, 2),
        p99_ms=round(latency["p99"] / 1000, 2),
        requests=ok,
        errors=status_errors + other_errors,
        duration_s=round(duration_s, 2),
    )


def run_wrk(
    wrk: str,
    base_url: str,
    request: HttpRequest,
    *,
    connections: int,
    duration: float,
    cpus: list[int] | None,
    timeout_s: float = 30.0,
) -> RunResult:
    """Run wrk once against `base_url` and return the run's result."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "body").write_bytes(request.body)
        headers = request.headers or {}
        (tmpdir / "headers").write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
        env = {
            **os.environ,
            "BENCH_LUA_DIR": str(LUA_DIR),
            "BENCH_METHOD": request.method,
            "BENCH_BODY_FILE": str(tmpdir / "body"),
            "BENCH_HEADERS_FILE": str(tmpdir / "headers"),
            "BENCH_OUT": str(tmpdir / "out.json"),
        }
        script = "post.lua"
        if request.paths:
            (tmpdir / "paths").write_text("\n".join(request.paths) + "\n")
            env["BENCH_PATHS_FILE"] = str(tmpdir / "paths")
            script = "rotate.lua"
        cmd = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={int(timeout_s)}s",
            "-s",
            str(LUA_DIR / script),
            base_url + request.path,
        ]
        try:
            proc = subprocess.run(
                pinned(cmd, cpus),
                env=env,
                capture_output=True,
                text=True,
                timeout=duration + timeout_s + 30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError(f"wrk did not finish in time: {' '.join(cmd)}") from exc
        out = tmpdir / "out.json"
        if proc.returncode != 0 or not out.exists():
            raise LoadError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return wrk_result(json.loads(out.read_text()))


@dataclass
class WsPlan:
    """A WebSocket workload: `mode` echo|broadcast with `clients` connections."""

    path: str
    mode: str
    clients: int
    frame: dict[str, object]


def run_ws(
    base_url: str,
    plan: WsPlan,
    *,
    warmup: float,
    runs: int,
    duration: float,
    cpus: list[int] | None,
) -> tuple[list[RunResult], str | None]:
    """Run ws_load.py (warm-up, then `runs` runs on the same connections).

    Returns the runs and, if any frame failed, what the first failure looked like.
    """
    ws_url = "ws://" + base_url.removeprefix("http://") + plan.path
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [
            sys.executable,
            str(WS_LOAD),
            "--url",
            ws_url,
            "--mode",
            plan.mode,
            "--clients",
            str(plan.clients),
            "--frame",
            json.dumps(plan.frame),
            "--warmup",
            str(warmup),
            "--runs",
            str(runs),
            "--duration",
            str(duration),
            "--out",
            str(out),
        ]
        budget = warmup + runs * duration + 90
        try:
            proc = subprocess.run(
                pinned(cmd, cpus), capture_output=True, text=True, timeout=budget, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError(f"ws_load did not finish in {budget:.0f}s") from exc
        if proc.returncode != 0 or not out.exists():
            raise LoadError(
                f"ws_load failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
            )
        data = json.loads(out.read_text())
        return [RunResult(**run) for run in data["runs"]], data.get("first_failure")

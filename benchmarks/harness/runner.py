"""The benchmark run: set up, start the servers, run every workload on both, report.

Order of a run:
1. prerequisites (wrk, matplotlib, jac-scale's venv) are installed if missing;
2. the ceiling (bare Starlette route) is measured alone;
3. ours and jac-scale start side by side (one worker each, each pinned to the
   server CPU, fresh copy of the app and fresh data); every workload then runs
   warm-up + N runs, alternating between the two servers run by run, so drift on a
   shared machine hits both alike;
4. ours restarts with --workers 2 for the workers rows;
5. results/<name>.json, .md and .png are written (and the README table, for full runs).
Every step is bounded: a time budget for the whole run (workloads that would not
fit are skipped and say so), a start-up timeout per server, a timeout per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from harness import environment, report
from harness.api import ApiClient, ApiError, envelope_ok
from harness.app import fresh_app_dir
from harness.loadgen import HttpRequest, LoadError, RunResult, run_wrk, run_ws
from harness.machine import OtherLoadMeter, Reading
from harness.servers import (
    ServerError,
    ServerProcess,
    ServerSpec,
    cpu_layout,
    free_port,
    stop_all,
    wait_until_idle,
)
from harness.stats import ratio, summarise_runs
from harness.workloads import Workload, all_workloads, ceiling_workload, hypercorn_workloads
from jacscale_core.launch import DEFAULT_SERVER

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
PHASES = ("read", "write", "sweep", "workers2")  # each gets freshly started servers
LABELS = {
    "ours": "jacscale (ours)",
    "ours_pg": "jacscale on PostgreSQL",
    "theirs": "jac-scale 0.2.31",
    "ceiling": "bare Starlette",
    "ours_hc": "jacscale (ours) on hypercorn",
    "ceiling_hc": "bare Starlette on hypercorn",
}
# Rows served by a variant fill the column of the server they stand for.
COLUMN = {"ours_pg": "ours", "ours_hc": "ours", "ceiling_hc": "ceiling"}
EXTRA_SERVERS = ("ceiling", "ceiling_hc", "ours_hc")  # started whenever a selected row names them
RUN_OVERHEAD_S = 0.7  # process start, prepare, preflight per run (for the time estimate)
SEED_S_PER_1000 = 2.5  # seeding cost estimate per 1,000 nodes (jac-scale is the slow one)
REPORT_RESERVE_S = 25.0  # kept free at the end for stopping servers and writing reports
SERVER = os.environ.get("JACSCALE_SERVER") or DEFAULT_SERVER  # ours and the ceiling run under it


def run_workloads() -> list[Workload]:
    """Every row of a run, in order: the ceiling, the workloads, hypercorn's rows."""
    extra = hypercorn_workloads() if SERVER != "hypercorn" else []
    return [ceiling_workload(), *all_workloads(), *extra]


CEILING_NOTE = (
    "The ceiling is benchmarks/ceiling_app.py: a bare Starlette JSON route served by "
    f"{SERVER} the way `jacscale serve` serves one worker (our server has no bare route)."
)


@dataclass
class Slot:
    """One server's share of a row: what it sends, and what came back."""

    entry: dict[str, Any]
    name: str
    proc: ServerProcess
    api: ApiClient
    wl: Workload
    req: HttpRequest | None = None
    single_s: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    invalid: str | None = None


class Settings:
    """What this run does: durations, repetitions, budget, selection."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick: bool = args.quick
        self.warmup: float = args.warmup if args.warmup is not None else 1.0
        self.runs: int = args.runs if args.runs is not None else (2 if self.quick else 3)
        self.duration: float = args.duration if args.duration is not None else 2.0
        self.budget: float = (
            args.budget if args.budget is not None else (150.0 if self.quick else 780.0)
        )
        self.only: set[str] | None = set(args.only.split(",")) if args.only else None
        self.servers: tuple[str, ...] = tuple(args.servers.split(","))
        complete = self.only is None and {"ours", "theirs"} <= set(self.servers)
        default = "quick" if self.quick else ("latest" if complete else "partial")
        self.name: str = args.name or default
        # Only a complete, full run under the default name may refresh the README table.
        self.update_readme: bool = not self.quick and complete and self.name == "latest"

    def selected(self, wl: Workload) -> bool:
        """Whether this run includes workload `wl`."""
        if self.only is not None:
            return wl.key in self.only
        return wl.quick or not self.quick


class Bench:
    """One benchmark run and everything it records."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.t0 = time.monotonic()
        self.server_cpus, self.load_cpus = cpu_layout()
        self.wrk = ""
        self.jwt_secret = secrets.token_hex(32)
        self.results: dict[str, Any] = {"meta": {}, "servers": {}, "workloads": []}
        self.failures: list[str] = []
        self.meter = OtherLoadMeter()
        self.run_reading: Reading | None = None
        self.postgres: Any = None  # the throwaway cluster of the ours_pg rows

    # -- time ----------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.t0

    def log(self, message: str) -> None:
        """A progress line with the elapsed time."""
        print(f"[{self.elapsed():5.0f}s] {message}", flush=True)

    def estimate(self, wl: Workload, n_servers: int) -> float:
        """Seconds workload `wl` will take on `n_servers` servers (generous)."""
        per_server = self.s.warmup + self.s.runs * self.s.duration
        per_server += (self.s.runs + 1) * RUN_OVERHEAD_S + wl.seed_nodes / 1000 * SEED_S_PER_1000
        if wl.kind == "ws" and wl.ws is not None:
            per_server += 1.0 + wl.ws.clients * 0.02
        return per_server * n_servers

    def fits(self, seconds: float) -> bool:
        """Whether `seconds` more work still fits in the time budget."""
        return self.elapsed() + seconds <= self.s.budget - REPORT_RESERVE_S

    # -- servers -------------------------------------------------------------------

    def spec(self, name: str, tag: str, workers: int = 1) -> ServerSpec:
        """How to start server `name` on a free port with a fresh app directory `tag`."""
        port = free_port()
        env = {"JWT_SECRET": self.jwt_secret, "PYTHONUNBUFFERED": "1"}
        cpus = self.server_cpus if workers == 1 else None
        if name in ("ours", "ours_pg", "ours_hc"):
            toml = (BENCH_DIR / "ours.jac.toml").read_text()
            app_dir = fresh_app_dir(WORK_DIR, tag, {"jac.toml": toml})
            venv_bin = Path(sys.executable).parent
            cmd = [
                str(venv_bin / "jacscale"),
                "serve",
                "app.jac",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ]
            env["JAC_DATA_PATH"] = str(app_dir / "data")
            notes = ["jac.toml = benchmarks/ours.jac.toml (WebSocket per-client limits raised)"]
            if name == "ours_hc":
                env["JACSCALE_SERVER"] = "hypercorn"
                cmd += ["--server", "hypercorn"]
                notes.append("--server hypercorn")
            if name == "ours_pg":  # a fresh database on the run's PostgreSQL cluster
                env["DATABASE_URL"] = self.postgres.fresh_database(tag.replace("-", "_"))
                notes.append(
                    "DATABASE_URL: PostgreSQL 15 on loopback (fsync off), jacscale-postgres"
                )
            return ServerSpec(
                name,
                LABELS[name],
                cmd,
                app_dir,
                env,
                port,
                "/walker/ping",
                start_timeout=120,
                cpus=cpus,
                workers=workers,
                notes=notes,
            )
        if name == "theirs":
            app_dir = fresh_app_dir(WORK_DIR, tag)
            cmd = [
                str(environment.jacscale_python()),
                str(BENCH_DIR / "jacscale_launch.py"),
                "app.jac",
                str(port),
            ]
            # A fresh machine compiles jac-scale's own .jac sources on first start.
            return ServerSpec(
                name,
                LABELS[name],
                cmd,
                app_dir,
                env,
                port,
                "/walker/ping",
                start_timeout=240,
                cpus=cpus,
                workers=1,
                notes=["jac-scale 0.2.31 has no --host: jacscale_launch.py binds it to 127.0.0.1"],
            )
        if name in ("ceiling", "ceiling_hc"):
            cmd = [sys.executable, str(BENCH_DIR / "ceiling_app.py"), "--port", str(port)]
            env["JACSCALE_SERVER"] = "hypercorn" if name == "ceiling_hc" else SERVER
            return ServerSpec(
                name,
                LABELS[name],
                cmd,
                BENCH_DIR,
                env,
                port,
                "/ceiling",
                start_timeout=60,
                cpus=cpus,
            )
        raise ValueError(name)

    def sessions(self, workloads: list[Workload]) -> list[tuple[str, list[Workload]]]:
        """Workloads grouped into server sessions, one fresh start each.

        Full runs restart the servers for every phase; quick runs keep one session
        per worker count (the write rows run last, so they cannot slow the others).
        """
        out: list[tuple[str, list[Workload]]] = []
        for phase in PHASES:
            todo = [wl for wl in workloads if wl.phase == phase]
            if not todo:
                continue
            if self.s.quick and out and out[-1][1][0].workers == todo[0].workers:
                out[-1][1].extend(todo)
            else:
                out.append((phase, todo))
        return out

    def start_servers(
        self, names: list[str], phase: str, workers: int = 1
    ) -> dict[str, ServerProcess]:
        """Start the named servers together and wait for each; failures are recorded."""
        procs: dict[str, ServerProcess] = {}
        for name in names:
            spec = self.spec(name, f"{name}-{phase}", workers)
            proc = ServerProcess(spec, WORK_DIR / "logs" / f"{name}-{phase}.log")
            proc.start()
            procs[name] = proc
        # Wait for all of them at once, so each start-up time is its own.
        with ThreadPoolExecutor(max_workers=len(procs)) as pool:
            waits = {name: pool.submit(proc.wait_ready) for name, proc in procs.items()}
        ready: dict[str, ServerProcess] = {}
        for name, proc in procs.items():
            key = f"{name}-{phase}"
            info = {
                "label": proc.spec.label,
                "phase": phase,
                "workers": workers,
                "command": " ".join(proc.spec.cmd),
                "notes": proc.spec.notes,
                "log": str(proc.log_path.relative_to(REPO_DIR)),
            }
            self.results["servers"][key] = info
            try:
                seconds = waits[name].result()
            except ServerError as exc:
                info["error"] = str(exc).splitlines()[0]
                self.failures.append(f"{key}: {exc}")
                self.log(f"{proc.spec.label} failed to start:\n{exc}")
                proc.stop()
                continue
            info["start_seconds"] = seconds
            self.log(
                f"{proc.spec.label} (workers={workers}) ready in {seconds:.1f}s "
                f"at {proc.spec.base_url}"
            )
            ready[name] = proc
        return ready

    def stop_servers(self, procs: dict[str, ServerProcess], phase: str) -> None:
        """Record each server's memory high-water mark, then stop them all."""
        for name, proc in procs.items():
            if proc.monitor is not None and proc.alive():
                self.results["servers"][f"{name}-{phase}"]["hwm_mb"] = proc.monitor.hwm_mb()
        stop_all(list(procs.values()))

    # -- workloads -----------------------------------------------------------------

    @staticmethod
    def preflight(api: ApiClient, req: HttpRequest, wl: Workload) -> tuple[str | None, float]:
        """Send the workload's request once: (None if the answer is right else why, seconds)."""
        path = req.paths[0] if req.paths else req.path
        started = time.perf_counter()
        resp = api.http.request(req.method, path, content=req.body, headers=req.headers)
        seconds = time.perf_counter() - started
        ok, why = envelope_ok(resp)
        if not ok:
            return why, seconds
        return (wl.check(resp) if wl.check else None), seconds

    def _prepare(
        self, wl: Workload, api: ApiClient
    ) -> tuple[HttpRequest | None, str | None, float]:
        assert wl.prepare is not None
        try:
            req = wl.prepare(api)
            problem, seconds = self.preflight(api, req, wl)
            return req, problem, seconds
        except (ApiError, httpx.HTTPError, ValueError, KeyError) as exc:
            return None, f"{type(exc).__name__}: {exc}", 0.0

    def run_seconds(self, single_request_s: float, warmup: bool) -> float:
        """How long a run lasts: the configured time, longer for slow requests.

        A run should complete about ten requests per connection slot (three in the
        warm-up), so slow workloads (1,000 nodes per request) still give percentiles;
        it never exceeds three times the configured duration.
        """
        base = self.s.warmup if warmup else self.s.duration
        wanted = single_request_s * (3 if warmup else 10)
        return float(min(max(base, wanted), 3 * self.s.duration))

    def run_http(self, slots: list[Slot]) -> None:
        """Warm-up and runs of HTTP slots, alternating between them run by run."""
        for slot in slots:
            req, problem, slot.single_s = self._prepare(slot.wl, slot.api)
            if problem or req is None:
                slot.error = problem or "no request"
            slot.req = req
        live = [slot for slot in slots if slot.error is None]
        for slot in live:
            assert slot.proc.monitor is not None
            slot.proc.monitor.reset()
        for index in range(self.s.runs + 1):  # run 0 is the warm-up
            for slot in live:
                if slot.error is not None or slot.req is None:
                    continue
                req = slot.req
                if slot.wl.fresh_per_run and index > 0:
                    fresh, problem, _ = self._prepare(slot.wl, slot.api)
                    if problem or fresh is None:
                        slot.error = f"prepare: {problem}"
                        continue
                    req = fresh
                # Both servers share the server CPU: the previous run's leftovers first.
                wait_until_idle([s.proc.proc.pid for s in live if s.proc.proc is not None])
                try:
                    result = run_wrk(
                        self.wrk,
                        slot.proc.spec.base_url,
                        req,
                        connections=slot.wl.connections,
                        duration=self.run_seconds(slot.single_s, warmup=index == 0),
                        cpus=self.load_cpus,
                    )
                except LoadError as exc:
                    slot.error = str(exc)
                    continue
                if not slot.proc.alive():
                    slot.error = f"server died; log tail:\n{slot.proc.log_tail(10)}"
                    continue
                if index > 0:
                    slot.runs.append(result.to_json())
                    if not result.valid and slot.invalid is None:
                        slot.invalid = self.explain_invalid(result, slot.api, req, slot.wl)

    def explain_invalid(
        self, result: RunResult, api: ApiClient, req: HttpRequest, wl: Workload
    ) -> str:
        """Why a run did not count: no completed request, or failures (with a sample)."""
        if result.requests == 0 and result.errors == 0:
            return f"no request completed within the {result.duration_s:g} s run"
        try:
            problem, _ = self.preflight(api, req, wl)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        sample = f"; a request sent now: {problem}" if problem else ""
        return (
            f"{result.errors} of {result.errors + result.requests} requests failed "
            f"(non-2xx, timeouts or socket errors){sample}"
        )

    def run_ws(self, slots: list[Slot]) -> None:
        """WebSocket slots: one ws_load process per server (warm-up + runs), in turn."""
        for slot in slots:
            assert slot.wl.ws is not None and slot.proc.monitor is not None
            slot.proc.monitor.reset()
            wait_until_idle([s.proc.proc.pid for s in slots if s.proc.proc is not None])
            try:
                results, failure = run_ws(
                    slot.proc.spec.base_url,
                    slot.wl.ws,
                    warmup=self.s.warmup,
                    runs=self.s.runs,
                    duration=self.s.duration,
                    cpus=self.load_cpus,
                )
            except LoadError as exc:
                slot.error = str(exc)
                continue
            slot.runs = [r.to_json() for r in results]
            if failure and not all(r.valid for r in results):
                slot.invalid = failure

    @staticmethod
    def record(slot: Slot) -> None:
        """Write a slot's outcome into its row."""
        rec: dict[str, Any] = {"runs": slot.runs, "summary": summarise_runs(slot.runs)}
        rec["peak_rss_mb"] = slot.proc.monitor.peak_mb() if slot.proc.monitor else None
        if slot.error is not None:
            rec["error"] = slot.error
        elif rec["summary"] is None:
            rec["error"] = slot.invalid or "no valid run"
        elif slot.invalid is not None:
            rec["warning"] = f"a run did not count: {slot.invalid}"
        # The PostgreSQL and hypercorn rows fill the "ours" column (their titles say so).
        slot.entry["servers"][COLUMN.get(slot.name, slot.name)] = rec

    @staticmethod
    def new_entry(wl: Workload) -> dict[str, Any]:
        """An empty row for workload `wl`."""
        return {
            "key": wl.key,
            "title": wl.title,
            "description": wl.description,
            "kind": wl.kind,
            "connections": wl.ws.clients if wl.ws is not None else wl.connections,
            "workers": wl.workers,
            "compare_with": wl.compare_with,
            "servers": {},
        }

    def run_workload(
        self,
        wl: Workload,
        procs: dict[str, ServerProcess],
        apis: dict[str, ApiClient],
        companions: list[Workload] | None = None,
    ) -> None:
        """Run `wl` (and its companion rows, alternating with it) and record them."""
        slots: list[Slot] = []
        entries = []
        for each in [wl, *(companions or [])]:
            entry = self.new_entry(each)
            entries.append(entry)
            self.results["workloads"].append(entry)
            for name in each.servers:
                if name in procs:
                    slots.append(Slot(entry, name, procs[name], apis[name], each))
                elif name in self.s.servers or name in EXTRA_SERVERS:
                    entry["servers"][name] = {"error": "server not running"}
        if not slots:
            return
        if not self.fits(sum(self.estimate(e, 1) for e in (s.wl for s in slots))):
            for entry in entries:
                entry["skipped"] = "time budget"
            self.log(f"{wl.key}: skipped (time budget)")
            return
        reading = self.meter.start()
        if wl.kind == "ws":
            self.run_ws(slots)
        else:
            self.run_http(slots)
        others = self.meter.others_cpus(reading)
        for slot in slots:
            self.record(slot)
        for entry in entries:
            entry["other_cpus"] = others
        for entry in entries:
            self.log(report.progress_line(entry))
            for name, rec in entry["servers"].items():
                if rec.get("error"):
                    first = str(rec["error"]).splitlines()[0]
                    self.failures.append(f"{entry['key']} on {name}: {first}")

    # -- the run -------------------------------------------------------------------

    def setup(self) -> None:
        """Install what is missing and describe the machine."""
        self.wrk = environment.ensure_wrk()
        environment.ensure_plot_requirements()
        if "theirs" in self.s.servers:
            environment.ensure_jacscale_venv()
        if "ours_pg" in self.s.servers:
            from jacscale_postgres.testing import PostgresServer

            self.postgres = PostgresServer().start()
        if WORK_DIR.exists():
            shutil.rmtree(WORK_DIR)
        (WORK_DIR / "logs").mkdir(parents=True)
        self.results["meta"] = self.describe()
        self.results["meta"]["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
        self.run_reading = self.meter.start()

    def describe(self) -> dict[str, Any]:
        """Machine, versions and settings of this run."""
        versions = {
            "jacscale": environment.package_version(sys.executable, "jacscale"),
            "jaclang (ours)": environment.package_version(sys.executable, "jaclang"),
            "hypercorn": environment.package_version(sys.executable, "hypercorn"),
        }
        if "theirs" in self.s.servers:
            py = environment.jacscale_python()
            versions["jac-scale"] = environment.package_version(py, "jac-scale")
            versions["jaclang (jac-scale)"] = environment.package_version(py, "jaclang")
            versions["uvicorn (jac-scale)"] = environment.package_version(py, "uvicorn")
        wrk_version = subprocess.run(
            [self.wrk, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines()[:1]
        return {
            "mode": "quick" if self.s.quick else "full",
            "server": SERVER,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "git": _git_revision(),
            "machine": {
                "cpu": _cpu_model(),
                "cpus": os.cpu_count(),
                "memory_gb": _memory_gb(),
                "kernel": platform.release(),
                "python": platform.python_version(),
            },
            "versions": versions,
            "load_generator": {
                "http": " ".join((wrk_version[0] if wrk_version else "wrk").split()[:2])
                + ", 1 thread",
                "websocket": "benchmarks/harness/ws_load.py (Python asyncio, a minimal WebSocket client)",
            },
            "settings": {
                "warmup_s": self.s.warmup,
                "runs": self.s.runs,
                "duration_s": self.s.duration,
                "server_cpus": self.server_cpus,
                "load_cpus": self.load_cpus,
                "budget_s": self.s.budget,
            },
            "ceiling": CEILING_NOTE,
        }

    def run(self) -> int:
        """The whole benchmark; returns the exit code."""
        os.sched_setaffinity(0, set(self.load_cpus))  # keep the harness off the server CPU
        try:
            self.setup()
        except environment.SetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        self.log(
            f"set up; server CPUs {self.server_cpus}, load generator CPUs "
            f"{self.load_cpus}; {self.s.runs} runs of {self.s.duration:g}s after a "
            f"{self.s.warmup:g}s warm-up"
        )
        workloads = [wl for wl in run_workloads() if self.s.selected(wl)]
        try:
            for phase, todo in self.sessions(workloads):
                workers = todo[0].workers
                wanted = [*self.s.servers, *EXTRA_SERVERS]
                names = [n for n in wanted if any(n in wl.servers for wl in todo)]
                if not names:
                    continue
                if not self.fits(15 + self.estimate(todo[0], len(names))):
                    for wl in todo:
                        self.results["workloads"].append(
                            {
                                "key": wl.key,
                                "title": wl.title,
                                "description": wl.description,
                                "kind": wl.kind,
                                "workers": workers,
                                "servers": {},
                                "compare_with": wl.compare_with,
                                "skipped": "time budget",
                            }
                        )
                    continue
                procs = self.start_servers(names, phase, workers)
                apis = {n: ApiClient(p.spec.base_url) for n, p in procs.items()}
                try:
                    keys = {wl.key for wl in todo}
                    for wl in todo:
                        if wl.paired_with in keys:
                            continue  # runs alongside its partner
                        companions = [c for c in todo if c.paired_with == wl.key]
                        self.run_workload(wl, procs, apis, companions)
                finally:
                    for api in apis.values():
                        api.close()
                    self.stop_servers(procs, phase)
        finally:
            if self.postgres is not None:
                self.postgres.remove()
            self.results["meta"]["elapsed_s"] = round(self.elapsed(), 1)
            self.finish()
        if self.failures:
            print(f"\n{len(self.failures)} problem(s):", file=sys.stderr)
            for failure in self.failures:
                print(f"  - {failure}", file=sys.stderr)
            return 1
        return 0

    def finish(self) -> None:
        """Add ratios, then write JSON, markdown, plots and (full runs) the README table."""
        order = {wl.key: i for i, wl in enumerate(run_workloads())}
        self.results["workloads"].sort(key=lambda e: order.get(e["key"], len(order)))
        self.results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        if self.run_reading is not None:
            self.results["meta"]["other_cpus_avg"] = self.meter.others_cpus(self.run_reading)
        rows = [e["other_cpus"] for e in self.results["workloads"] if "other_cpus" in e]
        self.results["meta"]["other_cpus_max_row"] = max(rows, default=0.0)
        self.results["meta"]["cpus"] = self.meter.ncpu
        by_key = {e["key"]: e for e in self.results["workloads"]}
        for entry in self.results["workloads"]:
            ours = usable_summary(entry, "ours")
            ref = by_key.get(entry.get("compare_with") or entry["key"], entry)
            entry["ratio"] = ratio(ours, usable_summary(ref, "theirs"))
        if self.s.update_readme:
            refresh_readme_workloads()
        paths = report.write_all(
            self.results,
            RESULTS_DIR,
            self.s.name,
            readme=BENCH_DIR / "README.md" if self.s.update_readme else None,
        )
        self.log("wrote " + ", ".join(str(p.relative_to(REPO_DIR)) for p in paths))


def refresh_readme_workloads() -> None:
    """Rewrite the README's workload list from harness/workloads.py."""
    report.update_readme(
        BENCH_DIR / "README.md",
        report.workloads_markdown(run_workloads()),
        report.WORKLOADS_START,
        report.WORKLOADS_END,
    )


def refresh_readme() -> int:
    """--refresh-readme: the workload list, and the table from results/latest.json."""
    refresh_readme_workloads()
    latest = RESULTS_DIR / "latest.json"
    if latest.exists():
        results = json.loads(latest.read_text())
        pngs = [
            p
            for p in (RESULTS_DIR / "latest-rps.png", RESULTS_DIR / "latest-latency.png")
            if p.exists()
        ]
        images = "".join(f"\n![{p.stem}](results/{p.name})" for p in pngs)
        report.update_readme(BENCH_DIR / "README.md", report.markdown(results) + images)
    print(f"refreshed {BENCH_DIR / 'README.md'}")
    return 0


def usable_summary(entry: dict[str, Any], server: str) -> dict[str, Any] | None:
    """The server's summary for a workload, unless that server failed it."""
    rec = entry.get("servers", {}).get(server) or {}
    return None if rec.get("error") else rec.get("summary")


def _git_revision() -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() or "uncommitted"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            return round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of benchmarks/run.py."""
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Benchmark jacscale against jac-scale 0.2.31 side by side.",
    )
    p.add_argument("--quick", action="store_true", help="a ~2-minute subset (make bench-quick)")
    p.add_argument("--only", help="comma-separated workload keys (see README)")
    p.add_argument(
        "--servers",
        default="ours,theirs,ours_pg",
        help="which servers to run: ours,theirs,ours_pg (default all three)",
    )
    p.add_argument("--runs", type=int, help="measured runs per workload (3; quick 2)")
    p.add_argument("--duration", type=float, help="seconds per run, whole seconds (2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per workload (1)")
    p.add_argument(
        "--budget", type=float, help="seconds for the whole run incl. set-up (840; quick 150)"
    )
    p.add_argument("--name", help="results file name (default latest, or quick)")
    p.add_argument(
        "--refresh-readme",
        action="store_true",
        help="only regenerate README.md's workload list and table (from results/latest.json)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of benchmarks/run.py."""
    args = parse_args(argv)
    if args.refresh_readme:
        return refresh_readme()
    return Bench(Settings(args)).run()

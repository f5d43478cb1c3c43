"""Server processes under test: start, wait until ready, watch memory, stop.

Each server runs in its own session (process group) with its output in a log
file, pinned to the server CPUs with taskset where available. Readiness is a
real request answered 200 by a socket that belongs to the process we started
(jac-scale silently moves to the next port when its port is taken).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class ServerError(Exception):
    """A server did not start, or died; the message includes its log tail."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_layout() -> tuple[list[int], list[int]]:
    """(server CPUs, load-generator CPUs): first CPU for the server, second for load.

    With one CPU both lists are that CPU (no separation possible).
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return [cpus[0]], [cpus[1]]
    return cpus, cpus


def pinned(cmd: list[str], cpus: list[int] | None) -> list[str]:
    """`cmd` prefixed with `taskset -c CPUS` when taskset exists and cpus are given."""
    if not cpus or not _has_taskset():
        return cmd
    return ["taskset", "-c", ",".join(str(c) for c in cpus), *cmd]


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by `root` and its descendants alive now."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 13:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS_PER_SECOND


def wait_until_idle(
    roots: list[int], *, window: float = 0.2, busy_share: float = 0.05, max_wait: float = 2.0
) -> float:
    """Wait until the servers `roots` use under `busy_share` of a CPU over `window`.

    A slow server is still working through requests its load generator left in
    flight when the run ended; on a shared CPU that work would land in the next
    server's run. Returns the seconds waited (at most about `max_wait`).
    """
    started = time.monotonic()
    while True:
        before = sum(cpu_seconds(r) for r in roots)
        time.sleep(window)
        used = sum(cpu_seconds(r) for r in roots) - before
        waited = time.monotonic() - started
        if used <= busy_share * window or waited >= max_wait:
            return waited


def _status_kb(pid: int, key: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def owns_port(root: int, port: int) -> bool:
    """Whether a process of the tree under `root` holds the listening socket on `port`."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    if not inodes:
        return False
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return True
    return False


class RssMonitor:
    """Samples the summed RSS of a process tree every `interval` seconds in a thread.

    `reset()` starts a new window; `peak_mb()` is the largest sum seen since.
    `hwm_mb()` sums each live process's own high-water mark (VmHWM).
    """

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root = root
        self.interval = interval
        self._peak_kb = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"rss-{root}", daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        return sum(_status_kb(pid, "VmRSS") for pid in process_tree(self.root))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            kb = self._sample()
            with self._lock:
                self._peak_kb = max(self._peak_kb, kb)

    def reset(self) -> None:
        """Start a new measuring window at the current RSS."""
        kb = self._sample()
        with self._lock:
            self._peak_kb = kb

    def peak_mb(self) -> float:
        """Peak summed RSS in MiB since the last reset (sampled now as well)."""
        kb = self._sample()
        with self._lock:
            self._peak_kb = max(self._peak_kb, kb)
            return round(self._peak_kb / 1024, 1)

    def hwm_mb(self) -> float:
        """Sum of VmHWM over the tree's live processes, in MiB."""
        return round(sum(_status_kb(p, "VmHWM") for p in process_tree(self.root)) / 1024, 1)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class ServerSpec:
    """How to start one server: command, working directory, environment, probe."""

    name: str  # "ours" | "theirs" | "ceiling"
    label: str  # what the report calls it
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    probe_path: str
    probe_body: bytes = b"{}"
    start_timeout: float = 120.0
    cpus: list[int] | None = None
    workers: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"


class ServerProcess:
    """A running server started from a ServerSpec; stop() ends its whole process group."""

    def __init__(self, spec: ServerSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.monitor: RssMonitor | None = None
        self.started_at = 0.0
        self.ready_seconds: float | None = None

    def start(self) -> None:
        """Launch the process (returns at once; call wait_ready next)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed when the child exits
        env = {**os.environ, **self.spec.env}
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            pinned(self.spec.cmd, self.spec.cpus),
            cwd=self.spec.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait_ready(self) -> float:
        """Block until the probe answers 200 from our own socket; return start-up seconds."""
        assert self.proc is not None
        deadline = self.started_at + self.spec.start_timeout
        url = self.spec.base_url + self.spec.probe_path
        last = "no answer yet"
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(
                        f"{self.spec.label} exited with code {self.proc.returncode} during "
                        f"start-up; log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    resp = client.post(
                        url,
                        content=self.spec.probe_body,
                        headers={"content-type": "application/json"},
                    )
                    last = f"HTTP {resp.status_code}"
                    if resp.status_code == 200:
                        if not owns_port(self.proc.pid, self.spec.port):
                            raise ServerError(
                                f"port {self.spec.port} answers but is not held by "
                                f"{self.spec.label} (pid {self.proc.pid}); log:\n{self.log_tail()}"
                            )
                        self.ready_seconds = round(time.monotonic() - self.started_at, 2)
                        self.monitor = RssMonitor(self.proc.pid)
                        return self.ready_seconds
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(0.25)
        raise ServerError(
            f"{self.spec.label} not ready after {self.spec.start_timeout:.0f}s (last probe: "
            f"{last}); log {self.log_path}:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM to the server's process group (does not wait)."""
        if self.monitor is not None:
            self.monitor.stop()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # start_new_session=True: the group id is the child's pid
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after `timeout` seconds."""
        self.terminate()
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Workers left in the group after the leader exited get a moment, then SIGKILL.
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def stop_all(servers: list[ServerProcess]) -> None:
    """Stop several servers, signalling all of them before waiting for any."""
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop()


def _group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

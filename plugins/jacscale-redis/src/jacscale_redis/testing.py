"""Test support for Redis plugins: a real `redis-server` on a free loopback port.

`RedisServer` runs one with stop() / kill() / start() / restart() / pause() /
resume() for failure tests. The binary is the Debian package
(`apt-get install redis-server`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from jacscale_core.testing import free_port

START_TIMEOUT = 10.0


def redis_binary() -> str:
    """The path of redis-server, or a test failure saying how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail(
            "redis-server is not installed; the Redis tests need the real server: "
            "apt-get install redis-server (or run ./scripts/ensure-test-tools.sh)",
            pytrace=False,
        )
    return path


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(16)
            return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
    except OSError:
        return False


class RedisServer:
    """One redis-server process (no persistence) in its own directory."""

    def __init__(
        self, workdir: Path, port: int | None = None, extra_args: list[str] | None = None
    ) -> None:
        """Prepare a server that will keep its files in `workdir` (`extra_args` for redis-server)."""
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING (at most 10 s)."""
        if self.process is not None and self.process.poll() is None:
            return self
        log_path = self.workdir / "redis.log"
        command = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(log_path),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _answers_ping(self.port):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        pytest.fail(f"redis-server did not start on port {self.port}:\n{log}", pytrace=False)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    def restart(self) -> RedisServer:
        """Stop, then start again on the same port (the data is gone: no persistence)."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo pause() (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


__all__ = ["RedisServer", "free_port", "redis_binary"]

"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks.

`PostgresServer()` runs initdb in a new temporary directory; `start()`,
`stop()` (fast shutdown), `kill()` (SIGKILL of every backend, as a crash) and
`fresh_database()` do what they say; `remove()` stops it and deletes its files.

The binaries are Debian's (`apt-get install postgresql`). initdb refuses to run
as root: when we are root, the cluster belongs to the `postgres` user the
Debian package creates (or `nobody`), and its directory is made theirs.
Failures raise PostgresClusterError with the server's own words.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from jacscale_core.testing import free_port

START_TIMEOUT = 30.0
SUPERUSER = "jacscale"
DEBIAN_BIN = Path("/usr/lib/postgresql")


class PostgresClusterError(RuntimeError):
    """The cluster could not be created or started (the message says why)."""


def postgres_bindir() -> Path:
    """The directory holding initdb and postgres; PostgresClusterError says how to install them."""
    candidates = sorted(DEBIAN_BIN.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresClusterError(
        "PostgreSQL is not installed; the PostgreSQL tests need the real server: "
        "apt-get install postgresql (or run ./scripts/ensure-test-tools.sh)"
    )


def _cluster_owner() -> pwd.struct_passwd | None:
    """The user the cluster runs as when we are root (initdb refuses root); None otherwise."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresClusterError(
        "running as root and neither a `postgres` nor a `nobody` user exists"
    )


class PostgresServer:
    """One PostgreSQL cluster (initdb'd in `workdir`) served on 127.0.0.1:<port>."""

    def __init__(self, port: int | None = None) -> None:
        """Create the cluster in a new directory under the system temp dir (not started).

        Not under pytest's tmp_path: its parents are private to root, and the
        cluster's owner must reach the directory.
        """
        self.workdir = Path(tempfile.mkdtemp(prefix="jacscale-pg-"))
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(16)
        self.bindir = postgres_bindir()
        self.owner = _cluster_owner()
        self.data = self.workdir / "data"
        self.log_path = self.workdir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._initdb()

    def _as_owner(self) -> dict[str, Any]:
        if self.owner is None:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid}

    def _initdb(self) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner is not None:
            for path in (self.workdir, pwfile):
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
            os.chmod(self.workdir, 0o700)
        command = [
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, timeout=120, cwd=self.workdir, **self._as_owner()
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise PostgresClusterError(
                f"initdb failed:\n{done.stdout.decode()}\n{done.stderr.decode()}"
            )

    def url(
        self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None
    ) -> str:
        """`postgresql://jacscale:<password>@127.0.0.1:<port>/<database>`."""
        secret = self.password if password is None else password
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """Start the server and wait until it accepts connections (at most 30 s)."""
        if self.process is not None and self.process.poll() is None:
            return self
        command = [
            str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.workdir}",
            "-c", "max_connections=200", "-c", "shared_buffers=32MB",
            # The tests kill the process, never the machine: skipping fsync loses nothing.
            "-c", "fsync=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # kill() takes every backend down with the postmaster
            **self._as_owner(),
        )
        log.close()
        ready = self.bindir / "pg_isready"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [str(ready), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True,
                timeout=10,
            )
            if probe.returncode == 0:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.kill()
        text = self.log_path.read_text(errors="replace")[-3000:]
        raise PostgresClusterError(f"postgres did not start on port {self.port}:\n{text}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open transactions roll back), then wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a crash would."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone with its group
        process.wait(timeout=10)
        # Backends die with the group; wait until none holds the port any more.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.05)

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (autocommit)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement.encode())

    def fresh_database(self, prefix: str = "t") -> str:
        """Create an empty database; return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        """Kill the server and delete the cluster's files.

        SIGKILL, not a fast shutdown: the files are deleted next, so the shutdown
        checkpoint a clean stop writes would be wasted disk work.
        """
        self.kill()
        shutil.rmtree(self.workdir)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True

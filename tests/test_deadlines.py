"""Walker deadlines and cancellation: a runaway walker answers 504, writes nothing,
and frees its thread; a client that disconnects cancels its walker."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jacscale_core.deadlines import Interruptible, WalkerTimedOut, by_deadline, shielded
from jacscale_core.program import ProgramLoadError
from jacscale_core.testing import TestApp, running_server

APP = """
import time;

node Mark { has tag: str; }

walker :pub spin {
    has count: int = 100;
    can go with Root entry {
        here ++> Mark(tag="spin");
        total = 0;
        i = 0;
        while i < self.count {
            total += i;
            i += 1;
        }
        report total;
    }
}

walker :pub catcher {
    has count: int = 100;
    can go with Root entry {
        here ++> Mark(tag="catcher");
        i = 0;
        while i < self.count {
            try {
                i += 1;
            } except Exception as e {
                report "swallowed";
            }
        }
        report i;
    }
}

@restspec(timeout=0.5)
walker :pub quick_limit {
    has count: int = 100;
    can go with Root entry {
        here ++> Mark(tag="quick");
        i = 0;
        while i < self.count { i += 1; }
        report i;
    }
}

walker :pub snooze {
    has seconds: float = 0.1;
    can go with Root entry {
        here ++> Mark(tag="snooze");
        time.sleep(self.seconds);
        report "woke";
    }
}

async walker :pub async_spin {
    has count: int = 100;
    async can go with Root entry {
        here ++> Mark(tag="async");
        i = 0;
        while i < self.count {
            await asyncio.sleep(0.01);
            i += 1;
        }
        report i;
    }
}

walker :pub marks {
    can go with Root entry { report sorted([m.tag for m in [-->(?:Mark)]]); }
}
"""

HUGE = 10**26


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.jac").write_text("import asyncio;\n" + APP)
    (app_dir / "jac.toml").write_text(
        "[plugins.scale.api]\nwalker_timeout_seconds = 1.0\n"
        "[plugins.scale.server]\nthread_pool_size = 2\n"
    )
    return app_dir / "app.jac"


def test_a_runaway_sync_walker_answers_504_and_writes_nothing(app_file: Path, tmp_path: Path) -> None:
    with TestApp(app_file, tmp_path / "data") as c:
        assert c.post("/walker/spin", json={"count": 10}).json()["data"]["reports"] == [45]
        for _ in range(3):  # more runaways than the pool has threads: each one is freed
            r = c.post("/walker/spin", json={"count": HUGE})
            assert r.status_code == 504, r.text
            assert r.json()["error"]["code"] == "TIMEOUT"
            assert "spin did not finish within 1s" in r.json()["error"]["message"]
        # The walker's own `except Exception` cannot swallow the interrupt.
        r = c.post("/walker/catcher", json={"count": HUGE})
        assert r.status_code == 504
        # Threads are free again: ordinary requests are answered at once.
        assert c.post("/walker/spin", json={"count": 3}).json()["data"]["reports"] == [3]
        tags = c.post("/walker/marks").json()["data"]["reports"][0]
        assert tags == ["spin", "spin"]  # the two that finished; no timed-out write landed


def test_restspec_timeout_overrides_the_default(app_file: Path, tmp_path: Path) -> None:
    with TestApp(app_file, tmp_path / "data") as c:
        started = time.monotonic()
        r = c.post("/walker/quick_limit", json={"count": HUGE})
        assert r.status_code == 504
        assert "within 0.5s" in r.json()["error"]["message"]
        assert time.monotonic() - started < 10  # bounded, not the 1 s default's business
        assert c.post("/walker/marks").json()["data"]["reports"][0] == []


def test_a_walker_blocked_in_c_is_answered_at_the_deadline(app_file: Path, tmp_path: Path) -> None:
    with TestApp(app_file, tmp_path / "data") as c:
        r = c.post("/walker/snooze", json={"seconds": 3})
        assert r.status_code == 504
        time.sleep(2.5)  # the sleep returns, the pending interrupt stops the walker
        assert c.post("/walker/marks").json()["data"]["reports"][0] == []
        assert c.post("/walker/snooze", json={"seconds": 0}).json()["data"]["reports"] == ["woke"]


def test_an_async_walker_times_out_too(app_file: Path, tmp_path: Path) -> None:
    with TestApp(app_file, tmp_path / "data") as c:
        r = c.post("/walker/async_spin", json={"count": 1000})
        assert r.status_code == 504, r.text
        assert c.post("/walker/async_spin", json={"count": 2}).json()["data"]["reports"] == [2]
        assert c.post("/walker/marks").json()["data"]["reports"][0] == ["async"]


def test_zero_turns_the_deadline_off(app_file: Path, tmp_path: Path) -> None:
    (app_file.parent / "jac.toml").write_text("[plugins.scale.api]\nwalker_timeout_seconds = 0\n")
    with TestApp(app_file, tmp_path / "data") as c:
        r = c.post("/walker/snooze", json={"seconds": 1.5})
        assert r.status_code == 200


def test_a_bad_restspec_timeout_stops_loading(tmp_path: Path) -> None:
    app = tmp_path / "bad.jac"
    app.write_text('@restspec(timeout="soon")\nwalker :pub w { can go with Root entry { report 1; } }\n')
    with pytest.raises(ProgramLoadError, match="timeout"):
        with TestApp(app, tmp_path / "data"):
            pass


def test_a_client_that_disconnects_cancels_its_walker(app_file: Path, tmp_path: Path) -> None:
    # No deadline and one walker thread: only the disconnect can free it.
    (app_file.parent / "jac.toml").write_text(
        "[plugins.scale.api]\nwalker_timeout_seconds = 0\n"
        "[plugins.scale.server]\nthread_pool_size = 1\n"
    )
    with running_server(app_file, tmp_path / "data") as base:
        port = int(base.rsplit(":", 1)[1])
        body = b'{"count": %d}' % HUGE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /walker/spin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            time.sleep(1.0)  # the walker is spinning
        # The one walker thread is free again.
        for _ in range(3):
            r = httpx.post(base + "/walker/spin", json={"count": 3}, timeout=30)
            assert r.json()["data"]["reports"] == [3]
        assert httpx.post(base + "/walker/marks", timeout=30).json()["data"]["reports"][0] == [
            "spin", "spin", "spin",
        ]  # fmt: skip
        log = next((tmp_path / "data").glob("server-*.log")).read_text()
        assert '"POST /walker/spin" 499' in log, log


def test_interrupt_waits_for_the_shield_and_never_reaches_the_next_job() -> None:
    job = Interruptible()
    seen: dict[str, Any] = {}
    inside = threading.Event()

    def work() -> None:
        try:
            with job.section():
                with shielded():
                    inside.set()
                    time.sleep(0.3)  # interrupt requested now: not raised in here
                    seen["shield_finished"] = True
                while True:
                    pass
        except WalkerTimedOut:
            seen["stopped"] = True
        # The next job on this thread runs undisturbed.
        total = 0
        for i in range(2_000_000):
            total += i
        seen["next_job"] = total

    thread = threading.Thread(target=work)
    thread.start()
    inside.wait(5)
    assert job.interrupt(WalkerTimedOut) is True
    thread.join(10)
    assert not thread.is_alive()
    assert seen == {"shield_finished": True, "stopped": True, "next_job": sum(range(2_000_000))}
    # Once the section is over the job is past interrupting (it would be committing).
    assert job.interrupt(WalkerTimedOut) is True  # already requested: still reported stopped
    fresh = Interruptible()
    with fresh.section():
        pass
    assert fresh.interrupt(WalkerTimedOut) is False


def test_by_deadline_answers_in_time_and_cancels_late_work() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def slow(seconds: float, value: str) -> str:
            await asyncio.sleep(seconds)
            return value

        assert await by_deadline(None, slow(0.01, "no deadline")) == "no deadline"
        assert await by_deadline(loop.time() + 5, slow(0.01, "in time")) == "in time"
        stopped = asyncio.Event()

        async def never() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()

        began = loop.time()
        with pytest.raises(TimeoutError):
            await by_deadline(began + 0.1, never())
        assert stopped.is_set() and loop.time() - began >= 0.1
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # nothing left pending on this task

        async def own_timeout() -> None:
            raise TimeoutError("the work's own")

        with pytest.raises(TimeoutError, match="the work's own"):
            await by_deadline(loop.time() + 5, own_timeout())

    asyncio.run(main())


def test_by_deadline_lets_another_cancellation_through() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        inner = asyncio.create_task(by_deadline(loop.time() + 5, asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await inner

    asyncio.run(main())

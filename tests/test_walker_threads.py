"""The worker pool: results, exceptions, context variables, bounded concurrency."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from jacscale_core.walker_threads import WalkerThreads

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_results_exceptions_and_context_travel() -> None:
    pool = WalkerThreads(2)

    def boom() -> None:
        raise ValueError("from the worker")

    async def main() -> None:
        who.set("caller")
        assert await pool.run(lambda a, b: a + b, 2, 3) == 5
        assert await pool.run(who.get) == "caller"
        assert await pool.run(threading.current_thread) is not threading.current_thread()
        with pytest.raises(ValueError, match="from the worker"):
            await pool.run(boom)

    asyncio.run(main())
    pool.close()


def test_at_most_size_jobs_run_at_once() -> None:
    pool = WalkerThreads(3)
    running = 0
    peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(pool.run(job) for _ in range(9)))

    started = time.perf_counter()
    asyncio.run(main())
    assert peak == 3
    assert time.perf_counter() - started >= 0.14
    pool.close()
    with pytest.raises(RuntimeError):
        asyncio.run(pool.run(job))

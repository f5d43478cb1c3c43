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


def test_a_job_goes_to_the_most_recently_idle_thread() -> None:
    """Jobs one after another run on one warm thread, not on each thread in turn."""
    pool = WalkerThreads(4)

    async def main() -> set[int]:
        await asyncio.gather(*(pool.run(time.sleep, 0.02) for _ in range(4)))  # every thread ran once
        return {await pool.run(threading.get_ident) for _ in range(20)}

    assert len(asyncio.run(main())) == 1
    pool.close()


def test_close_finishes_the_backlog_then_stops_the_threads() -> None:
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def first() -> None:
        started.set()
        release.wait(5)
        done.append(1)

    async def main() -> None:
        pool = WalkerThreads(1, name="closing-pool")
        futures = [pool.submit(first), pool.submit(done.append, 2), pool.submit(done.append, 3)]
        await asyncio.to_thread(started.wait, 5)
        pool.close()
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(done.append, 4)
        release.set()
        await asyncio.wait_for(asyncio.gather(*futures), 5)

    asyncio.run(main())
    assert done == [1, 2, 3]
    deadline = time.monotonic() + 5
    while any(t.name.startswith("closing-pool") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the pool's thread did not stop"
        time.sleep(0.01)

"""The walker threads: the bounded thread pool that runs sync walkers and other
blocking work of a process (not to be confused with `--workers`, which are processes).

Like `loop.run_in_executor` with a ThreadPoolExecutor, with less per-call
machinery: a job is a tuple on a queue, and the worker completes the awaiting
asyncio future directly (`call_soon_threadsafe`), without the intermediate
concurrent.futures.Future and its condition variable. The caller's context
variables travel with the job, as with `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop, contextvars.Context, Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # cancelled, or answered already (e.g. a deadline's 504)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class WalkerThreads:
    """`size` daemon threads running submitted calls in their caller's context."""

    def __init__(self, size: int, name: str = "jacscale-walker") -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a worker thread and await its result (or exception)."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn(*args)`; the future gets its outcome (unless settled before by the caller)."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((future, loop, contextvars.copy_context(), fn, args))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, loop, context, fn, args = job
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                outcome: tuple[bool, Any] = (False, exc)
            else:
                outcome = (True, result)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:
                pass  # the loop closed while the job ran: nobody is waiting any more

    def close(self) -> None:
        """Let the threads finish their current job and stop (does not wait)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)

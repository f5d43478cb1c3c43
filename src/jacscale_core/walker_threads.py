"""The walker threads: the bounded thread pool that runs sync walkers and other
blocking work of a process (not to be confused with `--workers`, which are processes).

Like `loop.run_in_executor` with a ThreadPoolExecutor, with less per-call
machinery: the worker completes the awaiting asyncio future directly
(`call_soon_threadsafe`), without the intermediate concurrent.futures.Future and
its condition variable. The caller's context variables travel with the job, as
with `asyncio.to_thread`.

A job goes to the thread that became idle most recently (a stack, not a shared
queue): under light load one warm thread does most of the work. With a shared
queue waking the 16 threads in turn, the hop to a thread cost ~230 µs of CPU per
request instead of ~60 (`benchmarks/profile_asgi.py`, one request at a time).
Jobs that find every thread busy wait in a backlog, which a thread drains before
it goes idle.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
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


_Outcome = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop, bool, Any]


def _run(job: _Job) -> _Outcome:
    """Run one job in its caller's context; (future, loop, ok, result or exception)."""
    future, loop, context, fn, args = job
    try:
        return future, loop, True, context.run(fn, *args)
    except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
        return future, loop, False, exc


def _answer(outcome: _Outcome) -> None:
    """Hand a job's outcome to its caller's loop."""
    future, loop, ok, value = outcome
    try:
        loop.call_soon_threadsafe(_settle, future, ok, value)
    except RuntimeError:
        pass  # the loop closed while the job ran: nobody is waiting any more


class _Thread:
    """One pool thread's hand-off slot: the job it was given and the lock it sleeps on."""

    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.job: _Job | None = None
        self.wake = threading.Lock()
        self.wake.acquire()  # held while the thread sleeps; released to wake it


class WalkerThreads:
    """`size` daemon threads running submitted calls in their caller's context."""

    def __init__(self, size: int, name: str = "jacscale-walker") -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self._lock = threading.Lock()
        self._idle: list[_Thread] = []  # most recently idle last
        self._backlog: deque[_Job] = deque()
        self._closed = False
        for i in range(size):
            threading.Thread(target=self._work, args=(_Thread(),), name=f"{name}-{i}", daemon=True).start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a worker thread and await its result (or exception)."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn(*args)`; the future gets its outcome (unless settled before by the caller)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job: _Job = (future, loop, contextvars.copy_context(), fn, args)
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            if not self._idle:
                self._backlog.append(job)
                return future
            thread = self._idle.pop()
        thread.job = job
        thread.wake.release()
        return future

    def _work(self, me: _Thread) -> None:
        job, stop = self._next(me)
        while not stop:
            if job is None:
                me.wake.acquire()
                job, me.job = me.job, None
                if job is None:  # woken without a job: the pool closed
                    return
            outcome = _run(job)
            # Idle (or on to the backlog) before answering: a caller that submits
            # again as soon as it has its answer finds this warm thread on top.
            job, stop = self._next(me)
            _answer(outcome)
            del outcome  # nothing of a finished job stays alive while the thread waits

    def _next(self, me: _Thread) -> tuple[_Job | None, bool]:
        """(the backlog's next job, False); else (None, False) once idle; (None, True) to stop."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft(), False
            if self._closed:
                return None, True
            self._idle.append(me)
            return None, False

    def close(self) -> None:
        """Let the threads finish their current job and the backlog, then stop (does not wait)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        for thread in idle:
            thread.wake.release()  # no job: the thread stops

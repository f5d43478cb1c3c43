"""Walker deadlines: stop a sync walker running in a worker thread, safely.

A pure-Python loop inside one ability never returns to jaclang's walk loop, so
a flag it checks between steps cannot stop it. `Interruptible` stops it the way
Ctrl-C stops the main thread: CPython's `PyThreadState_SetAsyncExc` raises an
exception in the worker thread at its next bytecode boundary. Nothing is paid
while walkers run (no trace function); the cost is one timer per request.

An exception that can appear anywhere is only safe where nothing shared is half
done, so it is raised only:

- while the thread is inside `section()` (the walker's own code), never while
  the request commits, never after the job has moved on;
- outside `shielded()` blocks (store and shared-cache access: locks, caches);
  an interrupt that arrives inside one is raised when the block ends;
- once per job; a pending one that did not fire before the section ends is
  cleared there, so it can never reach the thread's next job.

A thread blocked in C (a long `time.sleep`, a socket read) sees the exception
when that call returns: the client is answered at the deadline regardless and
the request's writes are discarded, but the thread is busy until then.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager

from starlette.types import Receive

from jacscale_core.errors import ApiError

_CURRENT: contextvars.ContextVar[Interruptible | None] = contextvars.ContextVar(
    "jacscale_interruptible", default=None
)


class WalkerInterrupted(BaseException):
    """Raised inside a walker thread that must stop (BaseException: user `except Exception` cannot swallow it)."""


class WalkerTimedOut(WalkerInterrupted):
    """The request's deadline passed."""


class WalkerCancelled(WalkerInterrupted):
    """The client went away before the answer."""


def timeout_error(name: str, seconds: float) -> ApiError:
    """The 504 a request gets when its walker runs past its deadline."""
    return ApiError(
        "TIMEOUT",
        f"{name} did not finish within {seconds:g}s; its changes were discarded",
        status=504,
    )


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Set (or with None, clear) the exception pending in another thread."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class Interruptible:
    """One request's job: the event loop may ask it to stop; the thread decides where."""

    __slots__ = ("_lock", "_thread", "_walking", "_shields", "_requested", "_delivered")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = 0
        self._walking = False
        self._shields = 0
        self._requested: type[WalkerInterrupted] | None = None
        self._delivered = False

    @property
    def requested(self) -> bool:
        """True once `interrupt` asked the job to stop."""
        return self._requested is not None

    def interrupt(self, exc_type: type[WalkerInterrupted]) -> bool:
        """Ask the job to stop (from any thread). False when it is too late: it is committing.

        True means the job will not commit: it stops inside its walker now, or
        at its next `section()`.
        """
        with self._lock:
            if self._thread and not self._walking and self._requested is None:
                return False  # between sections: committing (or done)
            if self._requested is None:
                self._requested = exc_type
            if self._walking and self._shields == 0 and not self._delivered:
                self._delivered = True
                _raise_in(self._thread, exc_type)
            return True

    @contextmanager
    def section(self) -> Iterator[None]:
        """Run the walker's own code here (in the worker thread): it may be interrupted."""
        with self._lock:
            if self._requested is not None:
                raise self._requested()
            self._thread = threading.get_ident()
            self._walking = True
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)
            with self._lock:
                self._walking = False
                requested = self._requested
                if self._delivered:
                    _raise_in(self._thread, None)  # it did not fire: never into the next job
            if requested is not None:
                raise requested()

    def _enter_shield(self) -> None:
        with self._lock:
            if self._requested is not None and self._walking:
                if self._delivered:
                    _raise_in(self._thread, None)  # raised here instead, at a safe point
                raise self._requested()
            self._shields += 1

    def _leave_shield(self) -> None:
        with self._lock:
            self._shields -= 1
            if self._shields == 0 and self._requested is not None and self._walking:
                raise self._requested()


class shielded:  # noqa: N801 - used like a function: `with shielded():`
    """No walker interrupt is raised inside this block (shared locks and caches are safe)."""

    __slots__ = ("_job",)

    def __enter__(self) -> None:
        job = self._job = _CURRENT.get()
        if job is not None:
            job._enter_shield()

    def __exit__(self, *exc: object) -> None:
        if self._job is not None:
            self._job._leave_shield()


# A request that answers sooner never starts a watcher: most requests take
# milliseconds, and a task per request is a measurable share of their cost.
DISCONNECT_WATCH_AFTER_SECONDS = 0.05


async def cancel_on_disconnect[T](receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it when the client disconnects first (then 499, for the log).

    Call it once the request body has been read: `receive` is then only waited
    on for `http.disconnect`. `work` runs in the caller's task; if it is still
    running after DISCONNECT_WATCH_AFTER_SECONDS, a watcher task starts waiting
    for the disconnect and cancels the caller when it comes (a client already
    gone by then is seen at once: the server remembers the disconnect).
    """
    caller = asyncio.current_task()
    assert caller is not None
    loop = asyncio.get_running_loop()
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        caller.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(DISCONNECT_WATCH_AFTER_SECONDS, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone or caller.uncancel() > 0:
            raise  # cancelled by someone else (e.g. the server stopping)
        raise ApiError(
            "CLIENT_CLOSED_REQUEST",
            "The client closed the connection; the request was cancelled",
            status=499,
        ) from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def by_deadline[T](deadline: float | None, work: Awaitable[T]) -> T:
    """Await `work` in this task; at loop time `deadline` cancel it and raise TimeoutError.

    What `asyncio.timeout_at` does, with one timer handle instead of its context
    manager (whose rescheduling and bookkeeping cost a WebSocket message a
    twentieth of its CPU): the timer cancels this task, and the cancellation it
    caused becomes TimeoutError; any other cancellation propagates. No deadline:
    plain `await work`.
    """
    if deadline is None:
        return await work
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_at(deadline, expire)
    try:
        return await work
    except asyncio.CancelledError:
        if fired and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()

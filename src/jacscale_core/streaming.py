"""Generators as streams: a function returning a generator, or a walker reporting one.

The executor runs the walk (or calls the function) as usual; when the outcome
holds a generator, it hands this module the request's graph instead of
committing it. A `Stream` then produces the items one at a time, in the
request's jaclang context:

- a sync generator is advanced on the walker thread pool (a blocking `next()`
  never holds the event loop); an async one is awaited on the loop;
- each item is rendered exactly like a report (`codec.to_jsonable`);
- a walker's other reports keep their place: the stream is the walker's reports
  in order, each generator expanded into its items.

Graph writes: a streaming request is one unit of work, like any other. The
walk's writes and the generator's are committed together once the generator is
exhausted, before the stream's `end`; if the generator raises, the client goes
away or a time limit is hit, nothing is saved. A stream is never replayed
after a write conflict (its items were already sent): it ends with an error.

`collect` is the non-streaming form (`Accept: application/json`, `?stream=false`,
webhooks): the generators are drained inside the run, which then commits (and
replays on a conflict) like any request.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import AsyncGenerator, Generator
from typing import Any

from jaclang.runtimelib.context import ExecutionContext

from jacscale_core import codec
from jacscale_core.current import current_app
from jacscale_core.memory import RequestMemory, release_walker
from jacscale_core.store import WriteConflict
from jacscale_core.walker_threads import WalkerThreads

log = logging.getLogger("jacscale.stream")

_END = object()


class StreamError(Exception):
    """A stream ended in failure; `error_type` and `message` are safe to show a client."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def payload(self) -> dict[str, str]:
        """The `event: error` data: `{"error_type", "message"}`."""
        return {"error_type": self.error_type, "message": self.message}


def is_generator(value: Any) -> bool:
    """True for a sync or async generator object."""
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def streams(target: Any) -> bool:
    """True when calling `target` returns a generator (known before it runs)."""
    return inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)


def parts_of(kind: str, value: Any) -> list[Any] | None:
    """What a run streams, in order, or None when it streams nothing.

    A function: its returned generator. A walker: its reports, when at least
    one of them is a generator.
    """
    if kind == "function":
        return [value] if is_generator(value) else None
    reports = getattr(value, "reports", None) or []
    return list(reports) if any(is_generator(r) for r in reports) else None


def collect_sync(parts: list[Any]) -> list[Any]:
    """The parts with each generator drained into its items (blocking; a worker thread).

    An async generator is driven on a private event loop: the caller is a
    worker thread, which has none of its own.
    """
    out: list[Any] = []
    for part in parts:
        if inspect.isgenerator(part):
            out.extend(part)
        elif inspect.isasyncgen(part):
            out.extend(asyncio.run(_drain(part)))
        else:
            out.append(part)
    return out


async def collect_async(parts: list[Any], pool: WalkerThreads) -> list[Any]:
    """The parts with each generator drained (sync ones on the thread pool)."""
    out: list[Any] = []
    for part in parts:
        if inspect.isgenerator(part):
            out.extend(await pool.run(list, part))
        elif inspect.isasyncgen(part):
            out.extend(await _drain(part))
        else:
            out.append(part)
    return out


async def _drain(agen: AsyncGenerator[Any, Any]) -> list[Any]:
    return [item async for item in agen]


def _sync_step(gen: Generator[Any, None, None]) -> Any:
    try:
        item = next(gen)
    except StopIteration:
        return _END
    return codec.to_jsonable(item)


async def _async_step(agen: AsyncGenerator[Any, Any]) -> Any:
    try:
        item = await agen.__anext__()
    except StopAsyncIteration:
        return _END
    return codec.to_jsonable(item)


def safe_message(exc: BaseException) -> str:
    """An exception's message with server paths removed (never a traceback)."""
    return current_app().scrub(str(exc))


class Stream:
    """The items of one streaming request, produced in its jaclang context.

    Owns the request's graph (`ctx`, `mem`) from the end of the walk until
    `close()`. Call `next()` until it returns `Stream.END`, then `commit()`;
    always `close()`, however the stream ended (also while a `next()` is
    still running: a sync step is waited for, an async one is cancelled).
    """

    END = _END
    # How long close() waits for a sync step still running on a worker thread
    # before leaving the generator to be closed when that step returns.
    CLOSE_WAIT_SECONDS = 5.0

    def __init__(
        self,
        parts: list[Any],
        context: contextvars.Context,
        ctx: ExecutionContext,
        mem: RequestMemory,
        pool: WalkerThreads,
        walker: Any = None,
    ) -> None:
        """Take over a finished run's graph; `context` has its request context pushed."""
        self.parts = parts
        self.context = context
        self.ctx = ctx
        self.mem = mem
        self.pool = pool
        self.walker = walker
        self._index = 0
        self._step: asyncio.Task[Any] | None = None
        self._step_is_sync = False
        self._closed = False
        self._late_close: asyncio.Task[None] | None = None

    async def next(self) -> Any:
        """The next rendered item, or `Stream.END`; a generator's exception becomes StreamError."""
        while self._index < len(self.parts):
            if self._closed:
                raise StreamError("StreamClosed", "The stream was closed")
            part = self.parts[self._index]
            try:
                if inspect.isgenerator(part):
                    item = await self._run_step(self._in_thread(_sync_step, part), sync=True)
                elif inspect.isasyncgen(part):
                    item = await self._run_step(_async_step(part), sync=False)
                else:
                    self._index += 1
                    return await self._run_step(self._in_thread(codec.to_jsonable, part), sync=True)
            except StreamError:
                raise
            except Exception as exc:
                log.error("stream failed: %s", exc, exc_info=exc)
                raise StreamError(type(exc).__name__, safe_message(exc)) from None
            if item is not _END:
                return item
            self._index += 1
        return _END

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await self.pool.run(self.context.run, fn, *args)

    async def _run_step(self, coro: Any, sync: bool) -> Any:
        loop = asyncio.get_running_loop()
        step = self._step = loop.create_task(coro, context=None if sync else self.context)
        self._step_is_sync = sync
        # Shielded: cancelling the caller must not abandon a running sync step
        # (close() waits for it); an async step is cancelled by close() itself.
        return await asyncio.shield(step)

    async def commit(self) -> None:
        """Save the request's graph writes (the walk's and the generators'), once."""
        try:
            await self._in_thread(self.mem.flush, self.ctx.read_versions)
        except WriteConflict as exc:
            raise StreamError(
                "WriteConflict",
                "Another request changed the same data while this stream ran; nothing was saved",
            ) from exc
        except PermissionError as exc:
            raise StreamError("PermissionError", safe_message(exc)) from exc

    async def close(self) -> None:
        """Stop the generators (their `finally` blocks run) and drop the request's graph.

        Never raises: what goes wrong while closing is logged.
        """
        try:
            await self._close()
        except Exception as exc:  # noqa: BLE001 - logged; the stream is over either way
            log.warning("stream: closing failed (%s); the generator may not have been closed", exc)

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        step = self._step
        if step is not None and not step.done():
            if not self._step_is_sync:
                step.cancel()
            await asyncio.wait({step}, timeout=self.CLOSE_WAIT_SECONDS)
            if not step.done():
                log.warning(
                    "stream: a generator is still producing an item; it is closed when that returns"
                )
                step.add_done_callback(self._close_later)
                return
        await self._finish()

    def _close_later(self, _: Any) -> None:
        self._late_close = asyncio.ensure_future(self._finish_late())

    async def _finish_late(self) -> None:
        try:
            await self._finish()
        except Exception as exc:  # noqa: BLE001 - nobody awaits this task: log it here
            log.warning(
                "stream: a late close failed (%s); the generator may not have been closed", exc
            )

    async def _finish(self) -> None:
        for part in self.parts[self._index :]:
            try:
                if inspect.isgenerator(part):
                    await self._in_thread(part.close)
                elif inspect.isasyncgen(part):
                    loop = asyncio.get_running_loop()
                    await loop.create_task(part.aclose(), context=self.context)
            except Exception as exc:  # noqa: BLE001 - logged: the stream is over either way
                log.warning("stream: closing a generator failed: %s", exc, exc_info=exc)
        await self._in_thread(self._release)

    def _release(self) -> None:
        self.mem.abort()
        if self.walker is not None:
            release_walker(self.walker)


async def events(
    stream: Stream,
    idle_seconds: float,
    total_seconds: float,
    gone: asyncio.Future[Any] | None = None,
) -> AsyncGenerator[tuple[str, Any], None]:
    """A stream as events: `("data", item)` per item, then `("end", {})` once the
    request's writes are committed, or `("error", {"error_type", "message"})`.

    An item must come within `idle_seconds` and the whole stream within
    `total_seconds`, else it ends with a `StreamTimeout` error. When `gone`
    completes (the client left) the events stop without a last one. The stream
    is closed (generators stopped, nothing saved unless committed) in every case.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_seconds
    watch = {gone} if gone is not None else set()
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            left = deadline - loop.time()
            step = asyncio.ensure_future(stream.next())
            done, _ = await asyncio.wait(
                {step, *watch}, timeout=max(0.0, min(idle_seconds, left)),
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            if step not in done:
                if gone is not None and gone.done():
                    log.info("stream: the client went away; generator stopped, nothing saved")
                    return
                if left <= idle_seconds:
                    message = (
                        f"The stream ran longer than {total_seconds:g}s (stream_total_seconds)"
                    )
                else:
                    message = f"No item within {idle_seconds:g}s (stream_idle_seconds)"
                log.warning("stream: %s; generator stopped, nothing saved", message)
                yield "error", {"error_type": "StreamTimeout", "message": message}
                return
            finished, step = step, None
            try:
                item = finished.result()
            except StreamError as exc:
                yield "error", exc.payload()
                return
            if item is Stream.END:
                break
            yield "data", item
        try:
            await stream.commit()
        except StreamError as exc:
            log.error("stream: commit failed: %s", exc.message)
            yield "error", exc.payload()
            return
        yield "end", {}
    finally:
        await stream.close()
        if step is not None:
            step.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Consume an abandoned step's outcome (it was logged where it happened)."""
    if not future.cancelled():
        future.exception()

"""Run an endpoint for a principal: a fresh jaclang context per request, one commit,
optimistic-concurrency replay.

Sync walkers and functions run in a bounded thread pool; async ones are awaited
on the event loop (their graph reads are served from the in-process record cache,
falling back to the local store). A request's writes reach the store in one
atomic batch at the end (`RequestMemory.flush`); a write conflict discards the
attempt and replays the request, at most `max_replays` times, then answers 409.
After a conflict, the requests of that user root in this process queue on a lock
for a short while (HOT_SECONDS), so hot spots serialise locally instead of
livelocking; only other processes can still conflict with them.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar
from uuid import UUID

from jaclang import JacRuntime as Jac
from jaclang.jac0core.archetype import NodeAnchor, Root
from jaclang.jac0core.osp_kernel_sv import isolate_request_walk_stack
from jaclang.runtimelib.context import CallState, ExecutionContext

from jacscale_core import codec, streaming
from jacscale_core.codec import Rendered
from jacscale_core.deadlines import (
    Interruptible,
    WalkerCancelled,
    WalkerTimedOut,
    by_deadline,
    timeout_error,
)
from jacscale_core.errors import ApiError
from jacscale_core.memory import (
    GUEST_ROOT_ID,
    SYSTEM_ROOT_ID,
    RequestMemory,
    SharedTier,
    encode_state,
    release_walker,
)
from jacscale_core.principal import Principal
from jacscale_core.program import Endpoint
from jacscale_core.store import RecordWrite, WriteConflict
from jacscale_core.walker_threads import WalkerThreads

T = TypeVar("T")
# After a write conflict, a root's requests in this process run one at a time for
# this long, so contention is resolved by queueing instead of repeated replays.
HOT_SECONDS = 2.0
# A timed-out request found committing is looked at again this often (a commit is
# never interrupted: it finishes and the request answers with its result).
COMMIT_POLL_SECONDS = 0.05


@dataclass
class RunResult:
    """What a run produced: the walker (or function return value), reports, denied writes."""

    result: Any  # codec.Rendered: the JSON form of the walker or return value
    reports: Any  # codec.Rendered: the JSON form of the reports list
    warnings: list[dict[str, Any]] = field(default_factory=list)
    replays: int = 0
    # Set instead of result/reports when the run produced a generator and the
    # caller asked for a stream (see jacscale_core.streaming).
    stream: streaming.Stream | None = None


class Executor:
    """Runs walkers and functions against the shared tier."""

    def __init__(
        self,
        tier: SharedTier,
        *,
        pool_size: int = 16,
        max_replays: int = 25,
        timeout: float = 0.0,
    ) -> None:
        self.tier = tier
        self.max_replays = max_replays
        self.timeout = timeout  # seconds a walker may run (0: no deadline); @restspec(timeout=) wins
        self.pool = WalkerThreads(pool_size, name="jacscale-walker")
        self.guest_principal = Principal(user_id="guest", root_id=GUEST_ROOT_ID.hex, kind="guest")
        # ExecutionContext(_parent=...) is jaclang's cheap per-request fork; we give
        # it a stand-in parent and then install our own memory and roots.
        self._parent = SimpleNamespace(
            mem=None,
            system_root=None,
            user_root=None,
            entry_node=None,
            base_path_dir=None,
            full_target_path=None,
        )
        # Kept on the event loop only (the replay loop runs there, sync walkers too).
        self._hot_locks: dict[UUID, asyncio.Lock] = {}
        self._hot_until: dict[UUID, float] = {}

    # -- set-up ---------------------------------------------------------------
    def ensure_roots(self) -> list[UUID]:
        """Create the system root and the shared guest root if the store lacks them.

        Asks the store itself (not the caches); returns the ids it had to create.
        """
        existing = self.tier.store.load([SYSTEM_ROOT_ID, GUEST_ROOT_ID])
        created = []
        for root_id in (SYSTEM_ROOT_ID, GUEST_ROOT_ID):
            if root_id not in existing:
                created.append(root_id)
                self.tier.cache.drop([root_id])
                try:
                    self._create_root_record(root_id)
                except WriteConflict:
                    pass  # another worker created it first: exactly what we wanted
        return created

    def _create_root_record(self, root_id: UUID | None = None) -> UUID:
        root = Root()
        anchor = root.__jac__
        if root_id is not None:
            anchor.id = root_id
        write = RecordWrite(
            op="create", id=anchor.id, kind="node", root=None, is_root=True,
            state=encode_state(anchor), edges=(),
        )  # fmt: skip
        self.tier.apply([write])
        return anchor.id

    async def create_root(self) -> str:
        """Make a new persistent user root; return its id as hex."""
        root_id = await self._in_thread(self._create_root_record)
        return root_id.hex

    def close(self) -> None:
        """Stop the worker threads."""
        self.pool.close()

    # -- running --------------------------------------------------------------
    async def run(
        self,
        endpoint: Endpoint,
        args: dict[str, Any],
        principal: Principal,
        node_id: UUID | None = None,
        stream: bool = False,
    ) -> RunResult:
        """Run a walker or function for `principal` and commit its writes once.

        A generator in the outcome (a function's return value, a walker's report)
        is drained into the result, unless `stream` is true: then the result's
        `stream` produces the items and commits at its end.

        Past its deadline (`@restspec(timeout=...)`, else the executor's) the run
        stops, its writes are discarded and the caller gets a 504 ApiError; a
        cancelled caller (the client went away) stops it the same way. (A stream,
        once handed over, is bounded by the stream's own limits.)
        """
        root_id = UUID(principal.root_id)
        timeout = endpoint.timeout if endpoint.timeout is not None else self.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout > 0 else None
        if endpoint.is_async:

            def attempt_async() -> Awaitable[RunResult]:
                # A task of its own, so the jaclang context vars never leak.
                return asyncio.ensure_future(
                    self._attempt_async(endpoint, args, root_id, node_id, stream, deadline)
                )

            try:
                return await self._replay(endpoint, root_id, attempt_async)
            except TimeoutError:
                if deadline is None or loop.time() < deadline:
                    raise  # the walker's own TimeoutError, not our deadline
                raise timeout_error(endpoint.name, timeout) from None
        job = Interruptible()  # one per request: a deadline stops whichever attempt runs
        caller = asyncio.current_task()
        assert caller is not None

        def attempt_sync() -> Awaitable[RunResult]:
            return self.pool.submit(
                self._attempt_sync, endpoint, args, root_id, node_id, stream, job
            )

        timer = None
        timed_out = False

        def on_deadline() -> None:
            nonlocal timer, timed_out
            if job.interrupt(WalkerTimedOut):
                # Answered now (the caller's wait is cancelled, as asyncio.timeout
                # does); the thread stops on its own and its outcome is dropped.
                timed_out = True
                caller.cancel()
            else:  # committing (or done): a commit is never cut short, look again soon
                timer = loop.call_later(COMMIT_POLL_SECONDS, on_deadline)

        if timeout > 0:
            timer = loop.call_later(timeout, on_deadline)
        try:
            return await self._replay(endpoint, root_id, attempt_sync)
        except asyncio.CancelledError:
            if timed_out and caller.uncancel() == 0:
                raise timeout_error(endpoint.name, timeout) from None
            job.interrupt(WalkerCancelled)  # False: it is committing, and may
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def call(self, principal: Principal, fn: Callable[[], T], commit: bool = False) -> T:
        """Run `fn()` in a request context on the principal's root (in a worker thread)."""
        root_id = UUID(principal.root_id)

        def body() -> T:
            with self.request_context(root_id) as (ctx, mem):
                value = fn()
                if commit:
                    mem.flush(ctx.read_versions)
                return value

        return await self._in_thread(body)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.pool.run(fn, *args)

    @contextmanager
    def request_context(
        self, root_id: UUID
    ) -> Iterator[tuple[ExecutionContext, RequestMemory]]:
        """A fresh jaclang context on `root_id`, current for the duration of the block."""
        ctx, mem = self._refreshed_context(root_id)
        with _current(ctx, mem):
            yield ctx, mem

    def _refreshed_context(self, root_id: UUID) -> tuple[ExecutionContext, RequestMemory]:
        """Take in other workers' writes, then a fresh context on `root_id` (store I/O: a thread)."""
        self.tier.refresh()
        return self._new_context(root_id)

    def _new_context(self, root_id: UUID) -> tuple[ExecutionContext, RequestMemory]:
        mem = RequestMemory(self.tier)
        ctx = ExecutionContext(_parent=self._parent)
        ctx.mem = mem
        system_root = mem.get(SYSTEM_ROOT_ID)
        if system_root is None or (root_id == GUEST_ROOT_ID and mem.get(root_id) is None):
            self.ensure_roots()  # the store lost them (e.g. a database restored empty)
            system_root = mem.get(SYSTEM_ROOT_ID)
        user_root = mem.get(root_id)
        if not isinstance(system_root, NodeAnchor):
            raise RuntimeError("the store has no system root (ensure_roots was not run)")
        if not isinstance(user_root, NodeAnchor):
            raise ApiError("UNAUTHORIZED", "This account has no graph root", headers={})
        ctx.system_root = system_root
        ctx.user_root = user_root
        ctx.entry_node = user_root
        return ctx, mem

    @staticmethod
    def _entry(mem: RequestMemory, node_id: UUID | None, user_root: NodeAnchor) -> NodeAnchor:
        if node_id is None:
            return user_root
        anchor = mem.get(node_id)
        if not isinstance(anchor, NodeAnchor) or not Jac.check_read_access(anchor):
            # The same answer for "missing" and "not yours": ids are not an oracle.
            raise ApiError("NOT_FOUND", f"Node {node_id.hex} not found")
        return anchor

    @staticmethod
    def _invoke_sync(endpoint: Endpoint, args: dict[str, Any], entry: NodeAnchor) -> Any:
        if endpoint.kind == "function":
            return endpoint.target(**args)
        walker = endpoint.target(**args)
        Jac.spawn(walker, entry.archetype)
        return walker

    def _attempt_sync(
        self,
        endpoint: Endpoint,
        args: dict[str, Any],
        root_id: UUID,
        node_id: UUID | None,
        stream: bool,
        job: Interruptible,
    ) -> RunResult:
        with self.request_context(root_id) as (ctx, mem):
            entry = self._entry(mem, node_id, ctx.user_root)
            try:
                with job.section():  # the deadline may stop the walker in here
                    value = self._invoke_sync(endpoint, args, entry)
                    parts = streaming.parts_of(endpoint.kind, value)
                    if parts is not None and not stream:
                        value = _with_items(endpoint, value, streaming.collect_sync(parts))
                if parts is not None and stream:
                    return self._hand_over(endpoint, value, parts, ctx, mem)
                mem.flush(ctx.read_versions)
            except PermissionError as exc:
                raise ApiError("FORBIDDEN", str(exc)) from exc
            return _result(endpoint, value, ctx)

    async def _replay(
        self,
        endpoint: Endpoint,
        root_id: UUID,
        attempt: Callable[[], Awaitable[RunResult]],
    ) -> RunResult:
        """Await `attempt()` until it commits without a write conflict (at most
        `max_replays` replays, then 409); a hot root's requests take turns."""
        lock: asyncio.Lock | None = None
        try:
            for replays in range(self.max_replays + 1):
                if lock is None and self._is_hot(root_id):
                    lock = self._hot_lock(root_id)
                    await lock.acquire()
                try:
                    result = await attempt()
                    result.replays = replays
                    return result
                except WriteConflict:
                    self._mark_hot(root_id)
                    await asyncio.sleep(_backoff(replays))
            raise _too_many_conflicts(endpoint)
        finally:
            if lock is not None:
                lock.release()

    async def _attempt_async(
        self,
        endpoint: Endpoint,
        args: dict[str, Any],
        root_id: UUID,
        node_id: UUID | None,
        stream: bool,
        deadline: float | None,
    ) -> RunResult:
        ctx, mem = await self._in_thread(self._refreshed_context, root_id)
        with _current(ctx, mem):
            entry = self._entry(mem, node_id, ctx.user_root)

            async def walk() -> tuple[Any, Any]:
                if endpoint.kind == "function":
                    value = endpoint.target(**args)
                    if asyncio.iscoroutine(value):
                        value = await value
                else:
                    value = endpoint.target(**args)
                    spawned = Jac.spawn(value, entry.archetype)
                    if asyncio.iscoroutine(spawned):
                        await spawned
                parts = streaming.parts_of(endpoint.kind, value)
                if parts is not None and not stream:
                    items = await streaming.collect_async(parts, self.pool)
                    value = _with_items(endpoint, value, items)
                return value, parts

            try:
                value, parts = await by_deadline(deadline, walk())  # the walk only: a commit finishes
                if parts is not None and stream:
                    return self._hand_over(endpoint, value, parts, ctx, mem)
                # Deciding what changed is in-memory work, as the walk was: only a
                # commit that has something to write goes to a thread (store I/O).
                writes = mem.collect_writes(ctx.read_versions)
                if writes:
                    await self._in_thread(self.tier.apply, writes)
            except PermissionError as exc:
                raise ApiError("FORBIDDEN", str(exc)) from exc
            return _result(endpoint, value, ctx)

    def _hand_over(
        self,
        endpoint: Endpoint,
        value: Any,
        parts: list[Any],
        ctx: ExecutionContext,
        mem: RequestMemory,
    ) -> RunResult:
        """Give the request's graph, uncommitted, to a Stream of `parts`.

        Called inside the request's context: the stream keeps a copy of it (the
        jaclang request context included) to produce its items in.
        """
        mem.streaming = True
        walker = value if endpoint.kind == "walker" else None
        stream = streaming.Stream(parts, contextvars.copy_context(), ctx, mem, self.pool, walker)
        return RunResult(Rendered(None), Rendered([]), stream=stream)

    def _is_hot(self, root_id: UUID) -> bool:
        until = self._hot_until.get(root_id)
        return until is not None and until > time.monotonic()

    def _mark_hot(self, root_id: UUID) -> None:
        if len(self._hot_until) > 10_000:
            self._hot_until.clear()
        self._hot_until[root_id] = time.monotonic() + HOT_SECONDS

    def _hot_lock(self, root_id: UUID) -> asyncio.Lock:
        if len(self._hot_locks) > 10_000:
            self._hot_locks.clear()
        return self._hot_locks.setdefault(root_id, asyncio.Lock())


@contextmanager
def _current(ctx: ExecutionContext, mem: RequestMemory) -> Iterator[None]:
    """Make `ctx` jaclang's request context for the block; then drop the request's
    uncommitted writes (unless a stream took them over) and restore the previous one."""
    token = Jac.push_request_context(ctx)
    isolate_request_walk_stack()
    call_token = ctx.call_state.set(CallState())
    try:
        yield
    finally:
        if not mem.streaming:
            mem.abort()
        ctx.call_state.reset(call_token)
        Jac.reset_request_context(token)


def _with_items(endpoint: Endpoint, value: Any, items: list[Any]) -> Any:
    """The run's outcome with its generators drained: a function returns the
    items; a walker's reports become the items (its other reports in place)."""
    if endpoint.kind == "function":
        return items
    value.reports = items
    return value


def _result(endpoint: Endpoint, value: Any, ctx: ExecutionContext) -> RunResult:
    """The run's outcome, rendered to JSON form while its anchors are still loaded."""
    warnings = [d.to_dict() for d in ctx.diagnostics]
    if endpoint.kind == "walker":
        reports = list(getattr(value, "reports", []) or [])
    else:
        reports = []
        state = ctx.call_state.get(None)
        while state is not None and not state.reports.empty():
            reports.append(state.reports.get_nowait())
    result = codec.walker_result(value) if endpoint.kind == "walker" else codec.to_jsonable(value)
    rendered = RunResult(Rendered(result), Rendered(codec.to_jsonable(reports)), warnings)
    if endpoint.kind == "walker":
        release_walker(value)
    return rendered


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(0.05, 0.001 * (2**attempt)))


def _too_many_conflicts(endpoint: Endpoint) -> ApiError:
    return ApiError(
        "CONFLICT",
        f"{endpoint.name}: too many concurrent writes to the same data; try again",
    )

"""psycopg 3 (+ psycopg_pool) against asyncpg on the store's own work: create and list 100.

Run: ``.venv/bin/python benchmarks/postgres_drivers.py [--seconds 3]`` (needs Debian's
postgresql and asyncpg: ``pip install asyncpg``). It starts a throwaway cluster,
then for each driver runs the same SQL the graph store runs:

- create: one transaction per request like POST /walker/add_todo: insert a node
  and an edge record, bump the root's version and append the edge, log the three
  ids in the change log;
- list 100: read the change log, then one statement loading 100 records with
  their edges.

Each is measured three ways: one caller in a loop; 8 walker threads calling a
blocking store (how the executor calls its store: walkers run in a thread
pool); for asyncpg also 8 tasks on its own event loop (its best case, which the
executor cannot use without making every store call a coroutine). Results go to
stdout and benchmarks/results/postgres-drivers.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jacscale_postgres.changes import _POLL
from jacscale_postgres.graph_store import _APPEND_EDGES, _CREATE, _LOAD, _LOG, PostgresGraphStore
from jacscale_postgres.testing import PostgresServer

from jacscale_core.store import RecordWrite

RESULTS = Path(__file__).resolve().parent / "results" / "postgres-drivers.md"
THREADS = 8
STATE = b"x" * 200


def seed(url: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A root holding 100 todos (through our store, so the schema is ours)."""
    store = PostgresGraphStore(url)
    root = RecordWrite(op="create", id=uuid.uuid4(), kind="node", is_root=True, state=STATE)
    store.apply([root])
    todos = [
        RecordWrite(op="create", id=uuid.uuid4(), kind="node", state=STATE) for _ in range(100)
    ]
    store.apply(todos)
    store.close()
    return root.id, [t.id for t in todos]


def create_writes(root: uuid.UUID) -> list[RecordWrite]:
    """What add_todo commits: a node, its edge record, the root's new edge."""
    node, edge = uuid.uuid4(), uuid.uuid4()
    return [
        RecordWrite(op="create", id=node, kind="node", state=STATE),
        RecordWrite(op="create", id=edge, kind="edge", state=STATE),
        RecordWrite(op="update", id=root, edges_added=(edge,)),
    ]


# ---------------------------------------------------------------- psycopg ----


def psycopg_ops(url: str, root: uuid.UUID, ids: list[uuid.UUID]) -> dict[str, Callable[[], Any]]:
    """The store itself (psycopg 3 with its pool), blocking calls."""
    store = PostgresGraphStore(url, pool_size=THREADS)
    store.prepare()

    def create() -> None:
        store.apply(create_writes(root))

    def list100() -> None:
        store.poll_changes()
        assert len(store.load(ids)) == 100

    return {"create": create, "list100": list100, "close": store.close}


# ---------------------------------------------------------------- asyncpg ----


class AsyncpgStore:
    """The same statements on asyncpg (a pool of THREADS connections)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None
        self.cursor = 0

    async def open(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.url, min_size=THREADS, max_size=THREADS)

    @staticmethod
    def _sql(text: str) -> str:
        """psycopg placeholders -> asyncpg's $n."""
        out, n = [], 0
        for piece in text.split("%s"):
            out.append(piece)
            n += 1
            out.append(f"${n}")
        return "".join(out[:-1])

    async def create(self, root: uuid.UUID) -> None:
        writes = create_writes(root)
        creates = writes[:2]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.fetchval("SELECT pg_current_xact_id()::text::bigint")
            made = await conn.fetch(
                self._sql(_CREATE),
                [w.id for w in creates],
                [w.kind for w in creates],
                [None, None],
                [False, False],
                [w.state for w in creates],
                [],
                [],
                [],
            )
            assert len(made) == 2
            await conn.fetchval(
                "UPDATE jacscale_anchors SET version = version + 1 WHERE id = $1 RETURNING version",
                root,
            )
            append = _APPEND_EDGES.replace("%(node)s", "$1").replace("%(edges)s", "$2")
            await conn.execute(append, root, [writes[2].edges_added[0]])
            await conn.execute(self._sql(_LOG), [w.id for w in writes], 1)

    async def list100(self, ids: list[uuid.UUID]) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetch(self._sql(_POLL), self.cursor, [], 2001)
            rows = await conn.fetch(self._sql(_LOAD), ids)
        assert len(rows) == 100

    async def close(self) -> None:
        await self.pool.close()


# ---------------------------------------------------------------- timing -----


def time_threads(op: Callable[[], Any], threads: int, seconds: float) -> tuple[float, float]:
    """(ops per second, median latency in ms) of `threads` threads calling `op`."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            op()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(loop) for _ in range(threads)]:
            f.result()
    elapsed = time.monotonic() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


async def time_tasks(op: Callable[[], Any], tasks: int, seconds: float) -> tuple[float, float]:
    """(ops per second, median latency in ms) of `tasks` tasks awaiting `op()`."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []

    async def loop() -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - t)

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    return len(latencies) / (time.monotonic() - started), statistics.median(latencies) * 1000


def main() -> int:
    """Measure both drivers; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()
    server = PostgresServer().start()
    rows: list[tuple[str, str, str, float, float]] = []
    try:
        url = server.fresh_database("drivers")
        root, ids = seed(url)
        ops = psycopg_ops(url, root, ids)
        for name in ("create", "list100"):
            for threads in (1, THREADS):
                rate, p50 = time_threads(ops[name], threads, args.seconds)
                rows.append(("psycopg 3 + psycopg_pool", name, f"{threads} thread(s)", rate, p50))
        ops["close"]()

        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()

        def on_loop(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

        store = AsyncpgStore(url)
        on_loop(store.open())
        calls: dict[str, Callable[[], Any]] = {
            "create": lambda: store.create(root),
            "list100": lambda: store.list100(ids),
        }
        for name, call in calls.items():
            for threads in (1, THREADS):
                rate, p50 = time_threads(lambda c=call: on_loop(c()), threads, args.seconds)
                rows.append(("asyncpg", name, f"{threads} thread(s) via the loop", rate, p50))
            rate, p50 = on_loop(time_tasks(call, THREADS, args.seconds))
            rows.append(("asyncpg", name, f"{THREADS} tasks on its loop", rate, p50))
        on_loop(store.close())
        loop.call_soon_threadsafe(loop.stop)
    finally:
        server.remove()
    lines = [
        "# PostgreSQL drivers: psycopg 3 vs asyncpg on the graph store's statements",
        "",
        f"`benchmarks/postgres_drivers.py --seconds {args.seconds:g}` on PostgreSQL 15 (loopback,"
        " fsync off), Python " + sys.version.split()[0] + ". Same SQL for both drivers.",
        "",
        "| driver | operation | callers | ops/s | median ms |",
        "|---|---|---|---:|---:|",
        *(f"| {d} | {op} | {c} | {r:,.0f} | {p:.2f} |" for d, op, c, r, p in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

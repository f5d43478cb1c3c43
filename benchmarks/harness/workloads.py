"""The workloads: what each one sends, how its data is prepared, how a reply is checked.

All run against the benchmark app (harness.app.build_bench_app): examples/todo
plus the reference document's webhook (03) and WebSocket (04) examples, unchanged. A workload's
`prepare` talks to one server through its API (registering users, seeding nodes)
and returns the request the load generator repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from harness.api import ApiClient, reports_of
from harness.loadgen import HttpRequest, WsPlan

JSON = {"Content-Type": "application/json"}
WEBHOOK_PATH = "/webhook/PaymentReceived"
WEBHOOK_BODY = b'{"payment_id": "PAY-12345", "amount": 99.99, "currency": "USD"}'

Prepare = Callable[[ApiClient], HttpRequest]
Check = Callable[[httpx.Response], str | None]


@dataclass
class Workload:
    """One row of the table."""

    key: str
    title: str
    description: str
    kind: str = "http"  # "http" (wrk) | "ws" (ws_load.py)
    prepare: Prepare | None = None
    ws: WsPlan | None = None
    check: Check | None = None
    connections: int = 8
    fresh_per_run: bool = False  # call prepare again before every run (fresh user)
    quick: bool = False  # part of `make bench-quick`
    workers: int = 1
    servers: tuple[str, ...] = ("ours", "theirs")
    compare_with: str | None = None  # for --workers 2 rows: the 1-process row of jac-scale
    seed_nodes: int = 0  # nodes this workload seeds per server (for the time estimate)
    # Servers restart with fresh data between phases (full runs), so the write-heavy
    # and graph-size rows do not leave their nodes in the caches of the others.
    phase: str = "read"
    # A row measured together with another (alternating run by run): the ceiling
    # runs alongside the trivial walker, so both see the same machine.
    paired_with: str | None = None
    notes: list[str] = field(default_factory=list)


def _reports_len(expected: int) -> Check:
    def check(resp: httpx.Response) -> str | None:
        reports = reports_of(resp.json())
        got = len(reports[0]) if reports and isinstance(reports[0], list) else -1
        return None if got == expected else f"expected {expected} todos, got {got}"

    return check


def _result_is(expected: object) -> Check:
    def check(resp: httpx.Response) -> str | None:
        body = resp.json()
        data = body.get("data") if isinstance(body, dict) else None
        got = data.get("result") if isinstance(data, dict) else body
        return None if got == expected else f"expected result {expected!r}, got {got!r}"

    return check


def _ping(api: ApiClient) -> HttpRequest:
    return HttpRequest("POST", "/walker/ping", b"{}", dict(JSON))


def _create(api: ApiClient) -> HttpRequest:
    user = api.new_user("create")
    return HttpRequest(
        "POST", "/walker/add_todo", b'{"title": "benchmark todo"}', {**JSON, **user.auth}
    )


def _list(n: int) -> Prepare:
    def prepare(api: ApiClient) -> HttpRequest:
        user = api.user(f"list{n}", todos=n)
        return HttpRequest("POST", "/walker/list_todos", b"{}", {**JSON, **user.auth})

    return prepare


def _function(api: ApiClient) -> HttpRequest:
    return HttpRequest("POST", "/function/add", b'{"a": 40, "b": 2}', dict(JSON))


def _spawn(api: ApiClient) -> HttpRequest:
    user = api.user("spawn", todos=100)
    ids = api.todo_ids(user, 100)
    paths = [f"/walker/toggle_todo/{node_id}" for node_id in ids]
    return HttpRequest("POST", paths[0], b"{}", {**JSON, **user.auth}, paths=paths)


def _bulk(api: ApiClient) -> HttpRequest:
    user = api.new_user("bulk")
    return HttpRequest(
        "POST", "/walker/bulk_add", b'{"count": 1000, "prefix": "child"}', {**JSON, **user.auth}
    )


def _sweep(n: int) -> Prepare:
    def prepare(api: ApiClient) -> HttpRequest:
        user = api.user("sweep", todos=n)
        return HttpRequest("POST", "/walker/ping", b"{}", {**JSON, **user.auth})

    return prepare


def _webhook(api: ApiClient) -> HttpRequest:
    user = api.user("webhook")
    key = api.webhook_key(user)
    headers = api.webhook_headers(key, WEBHOOK_PATH, WEBHOOK_BODY)
    return HttpRequest("POST", WEBHOOK_PATH, WEBHOOK_BODY, headers)


def all_workloads() -> list[Workload]:
    """Every workload, in the order they run."""
    w: list[Workload] = [
        Workload(
            "trivial",
            "trivial :pub walker",
            'POST /walker/ping, no token: a public walker that reports "pong".',
            prepare=_ping,
            quick=True,
        ),
        Workload(
            "function",
            "function",
            "POST /function/add {a, b}: a public module function.",
            prepare=_function,
            check=_result_is(42),
            quick=True,
        ),
        Workload(
            "auth",
            "authenticated walker",
            "POST /walker/list_todos with a bearer token, on a root with no todos: "
            "a protected walker (token check + the user's own root).",
            prepare=_list(0),
            check=_reports_len(0),
            quick=True,
        ),
        Workload(
            "create",
            "create one node",
            "POST /walker/add_todo: one new Todo on the caller's root per request "
            "(a fresh user every run; the root grows during the run).",
            prepare=_create,
            fresh_per_run=True,
            quick=True,
            phase="write",
        ),
        Workload(
            "list10",
            "list 10 nodes",
            "POST /walker/list_todos on a root holding 10 todos; reports all 10.",
            prepare=_list(10),
            check=_reports_len(10),
            seed_nodes=10,
        ),
        Workload(
            "list10_c16",
            "list 10 nodes, 16 connections",
            "As `list10` (the same user, root, request and check) with 16 connections: "
            "the issue's p99 latency target is measured here.",
            prepare=_list(10),
            check=_reports_len(10),
            connections=16,
            quick=True,
            seed_nodes=10,
        ),
        Workload(
            "list100",
            "list 100 nodes",
            "POST /walker/list_todos on a root holding 100 todos; reports all 100.",
            prepare=_list(100),
            check=_reports_len(100),
            quick=True,
            seed_nodes=100,
        ),
        Workload(
            "list1000",
            "list 1,000 nodes",
            "POST /walker/list_todos on a root holding 1,000 todos; reports all 1,000.",
            prepare=_list(1000),
            check=_reports_len(1000),
            connections=4,
            seed_nodes=1000,
        ),
        Workload(
            "spawn",
            "walker spawned on a node",
            "POST /walker/toggle_todo/{node_id}, cycling through 100 todos: spawn on "
            "a node the caller owns and update it.",
            prepare=_spawn,
            seed_nodes=100,
        ),
        Workload(
            "bulk1000",
            "1,000 children in one walker",
            "POST /walker/bulk_add {count: 1000}: one walker creates 1,000 todos on "
            "the root (a fresh user every run; the root grows by 1,000 per request).",
            prepare=_bulk,
            fresh_per_run=True,
            connections=1,
            phase="write",
        ),
        Workload(
            "increment",
            "increment one shared counter",
            "POST /walker/increment (public): every request bumps the same node on the "
            "guest root, a read-modify-write that conflicts under concurrency.",
            prepare=_increment,
            phase="write",
        ),
        Workload(
            "webhook",
            "webhook call",
            "POST /webhook/PaymentReceived (example 03) with X-API-Key and an "
            "HMAC-SHA256 signature, in the scheme each server accepts.",
            prepare=_webhook,
        ),
    ]
    w += _on_postgres(w)
    for n in (1, 10, 100):
        w.append(
            Workload(
                f"ws_echo_{n}",
                f"WebSocket echo, {n} client{'s' if n > 1 else ''}",
                f"ws /ws/EchoMessage (example 04): {n} connected client(s), each sends a "
                "frame and waits for the answer, in a loop; req/s = frames answered per second.",
                kind="ws",
                ws=WsPlan("/ws/EchoMessage", "echo", n, {"message": "hello", "client_id": "bench"}),
                quick=(n == 10),
            )
        )
    for n in (1, 10, 100):
        w.append(
            Workload(
                f"ws_bcast_{n}",
                f"WebSocket broadcast, {n} client{'s' if n > 1 else ''}",
                f"ws /ws/ChatRoom (broadcast walker, example 04): {n} connected client(s); "
                "one sends, every client must receive it before the next send; req/s = "
                "broadcasts fully delivered per second.",
                kind="ws",
                ws=WsPlan("/ws/ChatRoom", "broadcast", n, {"sender": "bench"}),
            )
        )
    for n in (0, 100, 1000, 10000):
        w.append(
            Workload(
                f"sweep_{n}",
                f"graph size {n:,}: trivial walker",
                f"POST /walker/ping with a bearer token, so it runs on the caller's root, "
                f"which holds {n:,} todos: what a request pays for the size of the root.",
                prepare=_sweep(n),
                seed_nodes=n,
                phase="sweep",
            )
        )
    w += [
        Workload(
            "w2_trivial",
            "--workers 2: trivial :pub walker",
            "As `trivial`, served by ours with --workers 2. jac-scale 0.2.31 has no "
            "--workers, so its column and the ratio use its one-process `trivial` run.",
            prepare=_ping,
            workers=2,
            servers=("ours",),
            compare_with="trivial",
            phase="workers2",
        ),
        Workload(
            "w2_list100",
            "--workers 2: list 100 nodes",
            "As `list100`, served by ours with --workers 2 (compared with jac-scale's "
            "one-process `list100` run).",
            prepare=_list(100),
            check=_reports_len(100),
            workers=2,
            servers=("ours",),
            compare_with="list100",
            seed_nodes=100,
            phase="workers2",
        ),
    ]
    return w


def _increment(api: ApiClient) -> HttpRequest:
    return HttpRequest("POST", "/walker/increment", b"{}", dict(JSON))


def _on_postgres(rows: list[Workload]) -> list[Workload]:
    """create / list 100 / increment again, served by ours on PostgreSQL (DATABASE_URL)."""
    out = []
    for wl in rows:
        if wl.key not in ("create", "list100", "increment"):
            continue
        out.append(
            Workload(
                f"pg_{wl.key}",
                f"PostgreSQL: {wl.title}",
                f"As `{wl.key}`, served by ours with DATABASE_URL on a local PostgreSQL 15 "
                f"(jacscale-postgres) instead of SQLite; the jac-scale column is its `{wl.key}` run.",
                prepare=wl.prepare,
                check=wl.check,
                connections=wl.connections,
                fresh_per_run=wl.fresh_per_run,
                servers=("ours_pg",),
                compare_with=wl.key,
                seed_nodes=wl.seed_nodes,
                phase=wl.phase,
            )
        )
    return out


def ceiling_workload() -> Workload:
    """The bare Starlette JSON route (benchmarks/ceiling_app.py) under the run's server."""
    return Workload(
        "ceiling",
        "bare Starlette JSON route (ceiling)",
        "POST /ceiling on benchmarks/ceiling_app.py: Starlette under the same server as "
        "ours, parse the JSON body, answer JSON. No Jac at all: the most any walker "
        "request could reach.",
        prepare=lambda api: HttpRequest("POST", "/ceiling", b'{"a": 1}', dict(JSON)),
        servers=("ceiling",),
        quick=True,
        paired_with="trivial",
    )


def hypercorn_workloads() -> list[Workload]:
    """The trivial walker and the ceiling again under hypercorn, alternating with `trivial`.

    When the run's server is not hypercorn, these rows put hypercorn's numbers in
    the same run (same machine, same minutes) as the default server's.
    """
    return [
        Workload(
            "hc_ceiling",
            "hypercorn: bare Starlette JSON route (ceiling)",
            "As `ceiling`, under hypercorn.",
            prepare=lambda api: HttpRequest("POST", "/ceiling", b'{"a": 1}', dict(JSON)),
            servers=("ceiling_hc",),
            quick=True,
            paired_with="trivial",
        ),
        Workload(
            "hc_trivial",
            "hypercorn: trivial :pub walker",
            "As `trivial`, served by ours with `--server hypercorn`; the jac-scale column "
            "is its `trivial` run (measured in the same rounds).",
            prepare=_ping,
            servers=("ours_hc",),
            compare_with="trivial",
            quick=True,
            paired_with="trivial",
        ),
    ]

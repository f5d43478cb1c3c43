"""The issue's targets under the table, and the 16-connection list row they need."""

from __future__ import annotations

from typing import Any, cast

from harness import report
from harness.api import ApiClient, User
from harness.stats import ratio, summarise_runs
from harness.workloads import all_workloads


def server(rps: float, p50: float = 10.0, p99: float = 30.0) -> dict[str, Any]:
    runs = [
        {"rps": rps, "p50_ms": p50, "p90_ms": p50 * 2, "p99_ms": p99, "valid": True, "errors": 0}
    ]
    return {"runs": runs, "summary": summarise_runs(runs), "peak_rss_mb": 100.0}


def row(key: str, ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> dict[str, Any]:
    servers = {n: s for n, s in (("ours", ours), ("theirs", theirs)) if s is not None}
    entry: dict[str, Any] = {
        "key": key,
        "title": key,
        "kind": "http",
        "connections": 16 if key == "list10_c16" else 8,
        "servers": servers,
    }
    if ours and theirs and "summary" in ours and "summary" in theirs:
        entry["ratio"] = ratio(ours["summary"], theirs["summary"])
    return entry


def results(*rows: dict[str, Any], ceiling: float | None = 2000.0) -> dict[str, Any]:
    workloads = list(rows)
    if ceiling is not None:
        workloads.insert(
            0, {"key": "ceiling", "title": "ceiling", "servers": {"ceiling": server(ceiling)}}
        )
    return {"meta": {}, "servers": {}, "workloads": workloads}


def target_line(md: list[str] | str, start: str) -> str:
    lines = md.splitlines() if isinstance(md, str) else md
    return next(line for line in lines if line.startswith(f"- {start}"))


def test_all_targets_met() -> None:
    md = report.targets_markdown(
        results(
            row("trivial", server(1600), server(100)),
            row("create", server(1000), server(100)),
            row("list100", server(110), server(10)),
            row("bulk1000", server(4, p50=250.0), server(0.5, p50=1500.0)),
            row("list10_c16", server(500, p99=30.0), server(50, p99=380.0)),
        )
    )
    assert md[0].startswith("**Targets**")
    trivial = target_line(md, "trivial")
    assert "ours 1,600 req/s, jac-scale 100 req/s: **16.00×**" in trivial
    assert "80% of the ceiling (2,000 req/s)" in trivial
    assert trivial.endswith("— **met**")
    assert target_line(md, "create").endswith("**10.00×** (10.00–10.00) — **met**")
    assert target_line(md, "list 100").endswith("**11.00×** (11.00–11.00) — **met**")
    bulk = target_line(md, "1,000 children")
    assert "ours 250 ms (**0.50×** the 500 ms limit), jac-scale 1,500 ms — **met**" in bulk
    p99 = target_line(md, "p99 latency at 16 connections")
    assert "ours p99 30.0 ms, jac-scale 380 ms: ours is **0.08×** jac-scale's (1/12.7)" in p99
    assert p99.endswith("— **met**")


def test_targets_not_met() -> None:
    md = report.targets_markdown(
        results(
            # 12x jac-scale but only 40% of the ceiling: the ceiling part fails it.
            row("trivial", server(800), server(66.7)),
            row("create", server(539), server(74.6)),
            row("list100", server(56.9), server(7.5)),
            row("bulk1000", server(3.5, p50=500.0), None),
            row("list10_c16", server(300, p99=55.8), server(40, p99=380.0)),
        )
    )
    trivial = target_line(md, "trivial")
    assert "**11.99×**" in trivial and "40% of the ceiling" in trivial
    assert trivial.endswith("— **not met**")
    assert target_line(md, "create").endswith("— **not met**")
    assert "**7.23×**" in target_line(md, "create")
    assert target_line(md, "list 100").endswith("— **not met**")
    bulk = target_line(md, "1,000 children")  # p50 must be below 0.5 s; jac-scale not needed
    assert "ours 500 ms (**1.00×** the 500 ms limit) — **not met**" in bulk
    p99 = target_line(md, "p99 latency")
    assert "ours p99 55.8 ms, jac-scale 380 ms: ours is **0.15×** jac-scale's (1/6.8)" in p99
    assert p99.endswith("— **not met**")


def test_targets_not_measured() -> None:
    # A quick-like run: no bulk1000 or list10_c16 row; list100 skipped; create failed on
    # jac-scale; trivial measured but no ceiling row, and the ratio alone would pass.
    md = report.targets_markdown(
        results(
            row("trivial", server(1600), server(100)),
            row("create", server(500), {"error": "HTTP 500", "runs": []}),
            {"key": "list100", "title": "list100", "servers": {}, "skipped": "time budget"},
            ceiling=None,
        )
    )
    assert target_line(md, "trivial").endswith(
        "; the ceiling: not measured in this run — not measured in this run"
    )
    assert target_line(md, "create").endswith(": not measured in this run (jac-scale failed)")
    assert target_line(md, "list 100").endswith(": not measured in this run (skipped: time budget)")
    assert target_line(md, "1,000 children").endswith(": not measured in this run")
    assert target_line(md, "p99 latency").endswith(": not measured in this run")
    assert not any("**met**" in line or "**not met**" in line for line in md)


def test_each_row_has_its_own_threshold_and_compared_rows_use_their_reference() -> None:
    w2 = row("w2_trivial", server(1100), None)
    w2["compare_with"] = "trivial"
    md = report.targets_markdown(
        results(
            row("trivial", server(1200), server(100)),  # 12x: enough elsewhere, not here
            row("ws_bcast_100", server(60), server(10)),  # 6x against a 5x target
            row("ws_echo_100", server(900), server(100)),  # 9x against 10x
            w2,
        )
    )
    assert "**12.00×**" in target_line(md, "trivial") and "≥ 15×" in target_line(md, "trivial")
    assert target_line(md, "trivial").endswith("— **not met**")
    assert target_line(md, "WebSocket broadcast, 100").endswith("— **met**")
    assert target_line(md, "WebSocket echo, 100").endswith("— **not met**")
    workers = target_line(md, "--workers 2")
    assert "ours 1,100 req/s, jac-scale 100 req/s: **11.00×**" in workers
    assert workers.endswith("— **met**")


def test_a_failed_part_decides_even_without_the_ceiling() -> None:
    md = report.targets_markdown(results(row("trivial", server(500), server(100)), ceiling=None))
    assert target_line(md, "trivial").endswith("— **not met**")


def test_one_sided_run_is_not_measured() -> None:
    md = report.targets_markdown(results(row("list10_c16", server(500), None)))
    assert target_line(md, "p99 latency").endswith("not measured in this run (no jac-scale run)")


def test_targets_follow_the_table_in_the_markdown() -> None:
    res = results(row("list10_c16", server(500, p99=30.0), server(50, p99=380.0)))
    res["workloads"][1]["title"] = "list 10 nodes, 16 connections"
    md = report.markdown(res)
    table_row = next(line for line in md.splitlines() if line.startswith("| list 10 nodes, 16"))
    assert "| 16 |" in table_row
    assert md.index(table_row) < md.index("**Targets**")
    assert "— **met**" in target_line(md, "p99 latency")


class StubApi:
    """Stands in for ApiClient in a workload's prepare: one user per name."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[User, int]] = {}

    def user(self, name: str, todos: int = 0) -> User:
        if name not in self.users:
            self.users[name] = (User(f"{name}@x", f"token-{name}"), todos)
        return self.users[name][0]


def test_list10_at_16_connections_sends_the_list10_request() -> None:
    by_key = {wl.key: wl for wl in all_workloads()}
    c16, list10 = by_key["list10_c16"], by_key["list10"]
    assert c16.connections == 16 and list10.connections == 8
    assert c16.phase == list10.phase == "read"
    assert c16.kind == "http" and c16.workers == 1 and c16.servers == ("ours", "theirs")
    assert c16.prepare is not None and list10.prepare is not None
    api = StubApi()
    a = c16.prepare(cast(ApiClient, api))
    b = list10.prepare(cast(ApiClient, api))
    assert (a.method, a.path, a.body, a.headers) == (b.method, b.path, b.body, b.headers)
    assert a.path == "/walker/list_todos"
    assert api.users == {"list10": (api.users["list10"][0], 10)}  # one user, 10 todos
    keys = [wl.key for wl in all_workloads()]
    assert keys.index("list10_c16") == keys.index("list10") + 1  # right under list10

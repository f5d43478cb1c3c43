"""Which workloads run, how they are grouped, how long a run lasts."""

from __future__ import annotations

from harness.app import bench_app_source
from harness.runner import SERVER, Bench, Settings, parse_args, run_workloads
from harness.workloads import all_workloads, ceiling_workload, hypercorn_workloads


def bench(*argv: str) -> Bench:
    return Bench(Settings(parse_args(list(argv))))


def test_keys_unique_and_issue_workloads_present() -> None:
    keys = [wl.key for wl in all_workloads()]
    assert len(keys) == len(set(keys))
    for key in (
        "trivial",
        "create",
        "list10",
        "list10_c16",
        "list100",
        "list1000",
        "auth",
        "function",
        "bulk1000",
        "sweep_0",
        "sweep_100",
        "sweep_1000",
        "sweep_10000",
        "webhook",
        "ws_echo_1",
        "ws_echo_10",
        "ws_echo_100",
        "ws_bcast_1",
        "ws_bcast_10",
        "ws_bcast_100",
        "w2_trivial",
    ):
        assert key in keys


def test_full_run_restarts_servers_per_phase_quick_run_once() -> None:
    full = bench()
    phases = [phase for phase, _ in full.sessions(all_workloads())]
    assert phases == ["read", "write", "sweep", "workers2"]
    quick = bench("--quick")
    chosen = [wl for wl in [ceiling_workload(), *all_workloads()] if quick.s.selected(wl)]
    sessions = quick.sessions(chosen)
    assert len(sessions) == 1
    keys = [wl.key for wl in sessions[0][1]]
    assert keys[-1] == "create"  # the write row runs last
    assert {"ceiling", "trivial", "auth", "function", "list100", "list10_c16", "ws_echo_10"} <= set(
        keys
    )


def test_the_ceiling_runs_alongside_the_trivial_walker() -> None:
    ceiling = ceiling_workload()
    assert ceiling.paired_with == "trivial" and ceiling.phase == "read"
    assert "trivial" in [wl.key for wl in all_workloads() if wl.phase == "read"]


def test_hypercorn_rows_run_alongside_the_trivial_walker_in_the_same_run() -> None:
    rows = hypercorn_workloads()
    assert [(wl.key, wl.servers) for wl in rows] == [
        ("hc_ceiling", ("ceiling_hc",)),
        ("hc_trivial", ("ours_hc",)),
    ]
    assert all(wl.paired_with == "trivial" and wl.phase == "read" and wl.quick for wl in rows)
    assert rows[1].compare_with == "trivial"
    keys = [wl.key for wl in run_workloads()]
    assert ("hc_trivial" in keys) == (SERVER != "hypercorn")


def test_only_selects_and_names() -> None:
    b = bench("--only", "trivial,webhook")
    assert [wl.key for wl in all_workloads() if b.s.selected(wl)] == ["trivial", "webhook"]
    assert b.s.update_readme is False and b.s.name == "partial"
    assert bench("--servers", "ours").s.name == "partial"
    assert bench("--only", "trivial", "--name", "latest").s.update_readme is False
    assert bench().s.update_readme is True and bench().s.name == "latest"
    assert bench("--quick").s.name == "quick" and bench("--quick").s.update_readme is False


def test_slow_requests_get_longer_runs_within_a_cap() -> None:
    b = bench("--duration", "3", "--warmup", "1")
    assert b.run_seconds(0.01, warmup=False) == 3
    assert b.run_seconds(0.5, warmup=False) == 5
    assert b.run_seconds(5.0, warmup=False) == 9
    assert b.run_seconds(0.5, warmup=True) == 1.5


def test_bench_app_joins_todo_webhook_and_websocket_examples() -> None:
    src = bench_app_source()
    for name in (
        "walker bulk_add",
        "walker :pub ping",
        "walker PaymentReceived",
        "async walker :pub EchoMessage",
        "async walker :pub ChatRoom",
    ):
        assert name in src


def test_readme_workload_list_matches_the_definitions() -> None:
    from pathlib import Path

    from harness import report

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index(report.WORKLOADS_START) + len(report.WORKLOADS_START)
    end = readme.index(report.WORKLOADS_END)
    expected = report.workloads_markdown(run_workloads())
    assert readme[start:end].strip() == expected.strip(), (
        "README workload list is stale: run `.venv/bin/python benchmarks/run.py --refresh-readme`"
    )


def test_wait_until_idle_waits_for_a_busy_process_and_not_for_an_idle_one() -> None:
    import subprocess
    import sys

    from harness.servers import wait_until_idle

    # Each child says when its interpreter has started, so start-up CPU is not counted.
    idle_code = "import time; print('ready', flush=True); time.sleep(60)"
    busy_code = (
        "import time\nprint('ready', flush=True)\nend = time.time() + 1.5\n"
        "while time.time() < end: pass\ntime.sleep(60)"
    )
    idle = subprocess.Popen([sys.executable, "-c", idle_code], stdout=subprocess.PIPE, text=True)
    busy = subprocess.Popen([sys.executable, "-c", busy_code], stdout=subprocess.PIPE, text=True)
    try:
        assert idle.stdout is not None and idle.stdout.readline() == "ready\n"
        assert wait_until_idle([idle.pid], max_wait=5.0) < 4.0  # the first quiet window ends it
        assert busy.stdout is not None and busy.stdout.readline() == "ready\n"
        waited = wait_until_idle([busy.pid], max_wait=10.0)
        assert 0.5 < waited < 9.0  # until its 1.5 s of spinning ended, not until max_wait
    finally:
        idle.kill()
        busy.kill()

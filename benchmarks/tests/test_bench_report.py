"""The markdown table, the README section and the written files."""

from pathlib import Path
from typing import Any

import pytest
from harness import report
from harness.stats import ratio, summarise_runs


def runs(*rps: float) -> list[dict[str, Any]]:
    return [
        {
            "rps": r,
            "p50_ms": 1000 / r,
            "p90_ms": 2000 / r,
            "p99_ms": 3000 / r,
            "valid": True,
            "errors": 0,
        }
        for r in rps
    ]


def server(*rps: float, **extra: Any) -> dict[str, Any]:
    rec = {"runs": runs(*rps), "summary": summarise_runs(runs(*rps)), "peak_rss_mb": 120.0}
    rec.update(extra)
    return rec


def results() -> dict[str, Any]:
    trivial: dict[str, Any] = {
        "key": "trivial",
        "title": "trivial :pub walker",
        "kind": "http",
        "connections": 8,
        "servers": {"ours": server(900, 1000, 1100), "theirs": server(90, 100, 110)},
    }
    trivial["ratio"] = ratio(
        trivial["servers"]["ours"]["summary"], trivial["servers"]["theirs"]["summary"]
    )
    return {
        "meta": {
            "date": "2026-01-01 00:00 UTC",
            "mode": "full",
            "elapsed_s": 600,
            "machine": {"cpu": "X", "cpus": 2, "memory_gb": 24},
            "versions": {"jac-scale": "0.2.31"},
            "other_cpus_avg": 0.1,
            "other_cpus_max_row": 0.9,
            "cpus": 2,
            "settings": {
                "warmup_s": 1,
                "runs": 3,
                "duration_s": 3,
                "server_cpus": [0],
                "load_cpus": [1],
            },
        },
        "servers": {
            "ours-read": {
                "label": "ours",
                "phase": "read",
                "workers": 1,
                "start_seconds": 2.0,
                "hwm_mb": 200.0,
            }
        },
        "workloads": [
            {"key": "ceiling", "title": "ceiling", "servers": {"ceiling": server(2000)}},
            trivial,
            {
                "key": "webhook",
                "title": "webhook call",
                "kind": "http",
                "connections": 8,
                "servers": {"ours": {"error": "HTTP 404: no route"}, "theirs": server(50)},
                "ratio": None,
                "other_cpus": 0.9,
            },
            {
                "key": "w2_trivial",
                "title": "--workers 2: trivial",
                "kind": "http",
                "connections": 8,
                "compare_with": "trivial",
                "servers": {"ours": server(1800)},
                "ratio": {"median": 18.0, "min": 1, "max": 2},
            },
            {
                "key": "sweep_10000",
                "title": "graph size 10,000",
                "servers": {},
                "skipped": "time budget",
            },
        ],
    }


def test_table_rows() -> None:
    md = report.markdown(results())
    row = next(line for line in md.splitlines() if line.startswith("| trivial"))
    assert "1,000 (900–1,100)" in row
    assert "100 (90–110)" in row
    assert "**10.00×** (8.18–12.22)" in row
    assert "50%" in row  # 1,000 of the 2,000 req/s ceiling
    assert "**Ceiling**" in md and "2,000" in md


def test_failures_skips_and_workers_rows_are_explained() -> None:
    md = report.markdown(results())
    webhook = next(line for line in md.splitlines() if line.startswith("| webhook"))
    assert "failed<sup>" in webhook
    assert "HTTP 404: no route" in md
    w2 = next(line for line in md.splitlines() if line.startswith("| --workers 2"))
    assert "n/a: no --workers" in w2
    assert "one-process `trivial` row" in md
    assert "skipped (time budget)" in md


def test_other_programs_load_is_reported() -> None:
    md = report.markdown(results())
    assert "**Busy machine:** other programs used on average 0.10 of the 2 CPUs" in md
    assert "up to 0.90 during one row" in md
    webhook = next(line for line in md.splitlines() if line.startswith("| webhook"))
    assert webhook.startswith("| webhook call<sup>")
    assert "webhook call: other programs used 0.90 CPUs while this row ran." in md


def test_readme_section_is_replaced_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# B\n\nbefore\n{report.README_START}\nold table\n{report.README_END}\nafter\n"
    )
    report.update_readme(readme, "NEW TABLE")
    text = readme.read_text()
    assert "old table" not in text
    assert f"{report.README_START}\nNEW TABLE\n{report.README_END}" in text
    assert text.startswith("# B\n\nbefore\n") and text.endswith("after\n")


def test_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        report.update_readme(readme, "x")


def test_write_all_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="benchmarks/run.py installs it on first use")
    written = report.write_all(results(), tmp_path, "t")
    names = sorted(p.name for p in written)
    assert names == ["t-latency.png", "t-rps.png", "t.json", "t.md"]
    assert (tmp_path / "t-rps.png").read_bytes()[:4] == b"\x89PNG"
    assert "![t-rps](t-rps.png)" in (tmp_path / "t.md").read_text()

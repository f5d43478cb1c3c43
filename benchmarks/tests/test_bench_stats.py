"""Medians, spreads and ratios."""

from harness.stats import ratio, summarise_runs


def run(rps: float, p50: float = 1.0, valid: bool = True) -> dict[str, float | bool]:
    return {"rps": rps, "p50_ms": p50, "p90_ms": p50 * 2, "p99_ms": p50 * 3, "valid": valid}


def test_summary_is_median_min_max_of_valid_runs() -> None:
    s = summarise_runs([run(100, 3), run(300, 1), run(200, 2), run(9999, 0.1, valid=False)])
    assert s is not None
    assert (s["rps"], s["rps_min"], s["rps_max"]) == (200, 100, 300)
    assert (s["p50_ms"], s["p99_ms"]) == (2, 6)
    assert s["runs"] == 3


def test_no_valid_run_gives_none() -> None:
    assert summarise_runs([run(5, valid=False)]) is None
    assert summarise_runs([]) is None


def test_ratio_median_and_widest_spread() -> None:
    ours = summarise_runs([run(400), run(500), run(600)])
    theirs = summarise_runs([run(90), run(100), run(110)])
    r = ratio(ours, theirs)
    assert r == {"median": 5.0, "min": round(400 / 110, 2), "max": round(600 / 90, 2)}


def test_ratio_needs_both_sides() -> None:
    ours = summarise_runs([run(400)])
    assert ratio(ours, None) is None
    assert ratio(None, ours) is None

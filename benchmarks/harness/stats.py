"""Medians across runs, and the ours/theirs ratio with its min-max spread."""

from __future__ import annotations

import statistics
from typing import Any

METRICS = ("rps", "p50_ms", "p90_ms", "p99_ms")


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Median, min and max of each metric over the valid runs (None if none is valid)."""
    valid = [r for r in runs if r.get("valid", True)]
    if not valid:
        return None
    out: dict[str, Any] = {"runs": len(valid)}
    for metric in METRICS:
        values = [float(r[metric]) for r in valid]
        out[metric] = round(statistics.median(values), 2)
        out[metric + "_min"] = round(min(values), 2)
        out[metric + "_max"] = round(max(values), 2)
    return out


def ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> dict[str, float] | None:
    """ours/theirs req/s: median over median, and the widest spread the runs allow.

    The spread is [min(ours)/max(theirs), max(ours)/min(theirs)]: every pairing of
    one of our runs with one of theirs falls inside it.
    """
    if not ours or not theirs or theirs["rps"] <= 0 or theirs["rps_min"] <= 0:
        return None
    return {
        "median": round(ours["rps"] / theirs["rps"], 2),
        "min": round(ours["rps_min"] / theirs["rps_max"], 2),
        "max": round(ours["rps_max"] / theirs["rps_min"], 2),
    }

"""`[plugins.scale.scheduler]`: the scheduler's settings."""

from __future__ import annotations

from typing import Literal

import msgspec

SECTION = "plugins.scale.scheduler"


class SchedulerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The `[plugins.scale.scheduler]` section.

    - `enabled`: run scheduled jobs in this server (false: /jobs still manages
      dynamic jobs, another server fires them);
    - `missed_fires`: what happens to fires that came due while no server ran
      (more than `misfire_grace_seconds` late): "run_once" fires the job once
      right away and resumes its schedule, "skip" drops them and waits for the
      next scheduled time;
    - `lease_seconds`: how long the leader's lease lasts without renewal (a dead
      leader is replaced after at most this, plus one second);
    - `min_interval_seconds` and `max_jobs_per_user`: limits for dynamic jobs.
    """

    enabled: bool = True
    missed_fires: Literal["run_once", "skip"] = "run_once"
    misfire_grace_seconds: float = 30.0
    lease_seconds: float = 5.0
    min_interval_seconds: float = 1.0
    max_jobs_per_user: int = 100

    def problems(self) -> list[str]:
        """What is wrong with these values (empty when usable)."""
        out = []
        if not 1.0 <= self.lease_seconds <= 300.0:
            out.append(f"[{SECTION}] lease_seconds must be between 1 and 300")
        if self.misfire_grace_seconds < 0:
            out.append(f"[{SECTION}] misfire_grace_seconds must not be negative")
        if self.min_interval_seconds <= 0:
            out.append(f"[{SECTION}] min_interval_seconds must be positive")
        if self.max_jobs_per_user < 1:
            out.append(f"[{SECTION}] max_jobs_per_user must be at least 1")
        return out

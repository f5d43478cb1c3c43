"""How much of the machine other programs used while we measured.

The benchmarks share a 2-core machine. This meter reads the system's CPU time
(/proc/stat) and subtracts what the harness's own process tree used (servers,
load generators, and children already reaped, via cutime/cstime), so the report
can say how many CPUs other programs took during each row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.servers import process_tree


def system_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    total = sum(values[:8])
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return total - idle, total


def process_jiffies(pid: int) -> int:
    """utime + stime + cutime + cstime of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    # after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    try:
        return sum(int(fields[i]) for i in (11, 12, 13, 14))
    except (IndexError, ValueError):
        return 0


def own_jiffies(root: int | None = None) -> int:
    """CPU jiffies used so far by `root` (default: this process) and its descendants."""
    return sum(process_jiffies(pid) for pid in process_tree(root or os.getpid()))


@dataclass
class Reading:
    """A snapshot to measure from."""

    busy: int
    total: int
    own: int


class OtherLoadMeter:
    """`start()` then `others_cpus(reading)`: CPUs used by other programs since."""

    def __init__(self) -> None:
        self.ncpu = os.cpu_count() or 1

    def start(self) -> Reading:
        """Take a reading now."""
        busy, total = system_jiffies()
        return Reading(busy, total, own_jiffies())

    def others_cpus(self, since: Reading) -> float:
        """Average number of CPUs other programs kept busy since `since`."""
        now = self.start()
        span = now.total - since.total
        if span <= 0:
            return 0.0
        others = (now.busy - since.busy) - (now.own - since.own)
        return round(max(0.0, others / span * self.ncpu), 2)

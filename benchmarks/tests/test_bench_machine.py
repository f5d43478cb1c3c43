"""The other-programs CPU meter."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.machine import OtherLoadMeter, own_jiffies, process_jiffies, system_jiffies


def test_a_reaped_child_counts_as_our_own_cpu() -> None:
    hz = os.sysconf("SC_CLK_TCK")
    before = own_jiffies()
    code = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    used = (own_jiffies() - before) / hz
    assert used >= 0.4  # the child's busy half second, via our cutime


def test_readings_are_sane() -> None:
    busy, total = system_jiffies()
    assert 0 < busy < total
    assert process_jiffies(os.getpid()) > 0
    assert process_jiffies(2**22 + 12345) == 0  # no such process
    meter = OtherLoadMeter()
    start = meter.start()
    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    others = meter.others_cpus(start)
    assert 0.0 <= others <= meter.ncpu

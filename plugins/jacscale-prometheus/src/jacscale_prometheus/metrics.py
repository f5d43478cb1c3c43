"""The four metrics the reference document names, in one registry per app.

`{ns}_http_requests_total{method,path,status_code}`,
`{ns}_http_request_duration_seconds{method,path}`,
`{ns}_http_requests_in_progress` and, with `walker_metrics = true`,
`{ns}_walker_duration_seconds{walker_name,success}`.

In multiprocess mode (a directory is given) every sample goes to the worker's
mmap files and `render()` merges the files of all workers; otherwise the
metrics live in this process only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client import multiprocess as prom_multiprocess

from jacscale_prometheus.config import ResolvedMetrics
from jacscale_prometheus.multiproc import mark_dead_workers

CONTENT_TYPE = CONTENT_TYPE_LATEST


@cache
def _multiprocess_value_class() -> Any:
    # One per process: it owns this process's open mmap files.
    return values.MultiProcessValue()


def _use_value_class(multiprocess: bool) -> None:
    """Pick where new metric values are stored (prometheus-client decides at creation).

    prometheus-client chooses at import time from the environment and reads the
    choice again whenever a labelled child is created; setting it here makes it
    independent of who imported the library first. It is process-wide: a
    process serves one multiprocess app (a server worker), tests build
    single-process apps.
    """
    values.ValueClass = _multiprocess_value_class() if multiprocess else values.MutexValue


class Metrics:
    """The app's metrics and how to observe and render them."""

    def __init__(self, config: ResolvedMetrics, multiproc_dir: Path | None) -> None:
        self.config = config
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry(auto_describe=True)
        ns = config.namespace
        _use_value_class(multiproc_dir is not None)
        self.requests = Counter(
            f"{ns}_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "path", "status_code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            f"{ns}_http_request_duration_seconds",
            "HTTP request latency in seconds, by method and route template.",
            ["method", "path"],
            buckets=config.buckets,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            f"{ns}_http_requests_in_progress",
            "HTTP requests being processed now (summed over workers).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.job_fires = Counter(
            f"{ns}_scheduled_job_fires_total",
            "Fires of scheduled walkers and functions (@schedule), by name and outcome.",
            ["job_name", "success"],
            registry=self.registry,
        )
        self.walkers: Histogram | None = None
        if config.walker_metrics:
            self.walkers = Histogram(
                f"{ns}_walker_duration_seconds",
                "Walker and function run time in seconds, by name and outcome.",
                ["walker_name", "success"],
                buckets=config.buckets,
                registry=self.registry,
            )

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request."""
        self.requests.labels(method, path, str(status)).inc()
        self.duration.labels(method, path).observe(seconds)

    def observe_walker(self, name: str, success: bool, seconds: float) -> None:
        """Time one walker or function run (when walker metrics are on)."""
        if self.walkers is not None:
            self.walkers.labels(name, "true" if success else "false").observe(seconds)

    def observe_job_fire(self, name: str, success: bool) -> None:
        """Count one fire of a scheduled job (failed fires have success="false")."""
        self.job_fires.labels(name, "true" if success else "false").inc()

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or every worker's summed.

        Blocking (reads the workers' files): call it from a thread.
        """
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        mark_dead_workers(self.multiproc_dir)
        merged = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(merged, path=str(self.multiproc_dir))
        return generate_latest(merged)

    def close(self) -> None:
        """Retire this process's live gauges (a worker that stops counts no requests)."""
        if self.multiproc_dir is not None:
            import os

            prom_multiprocess.mark_process_dead(os.getpid(), str(self.multiproc_dir))

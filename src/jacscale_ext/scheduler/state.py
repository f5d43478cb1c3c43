"""The scheduler extension's per-worker state: its settings, job store and loop."""

from __future__ import annotations

from dataclasses import dataclass

from jacscale_core.config import ConfigError
from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_ext.scheduler.config import SECTION, SchedulerConfig
from jacscale_ext.scheduler.jobs import JobStore
from jacscale_ext.scheduler.service import Scheduler

STATE_KEY = "jacscale_ext.scheduler"


@dataclass
class SchedulerState:
    """What the scheduler extension keeps on the app (`app.state[STATE_KEY]`)."""

    app: AppContext
    config: SchedulerConfig
    store: JobStore | None = None
    scheduler: Scheduler | None = None

    def job_store(self) -> JobStore:
        """The job store, or 503 when the app's store plugin provides none."""
        if self.store is None:
            raise ApiError(
                "UNAVAILABLE",
                "Scheduled jobs are unavailable: the store plugin provides no job store",
            )
        return self.store


def state_of(app: AppContext) -> SchedulerState:
    """The scheduler state of `app`, built on first use (bad settings: ConfigError)."""
    state = app.state.get(STATE_KEY)
    if isinstance(state, SchedulerState):
        return state
    config = app.config_section(SECTION)
    problems = config.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    state = SchedulerState(app=app, config=config)
    app.state[STATE_KEY] = state
    return state

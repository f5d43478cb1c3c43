"""The scheduler's own hooks, added through `jacscale_add_hookspecs`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jacscale_core.plugins import hookspec

if TYPE_CHECKING:
    from jacscale_core.context import AppContext


@hookspec(firstresult=True)
def jacscale_job_store(app: AppContext) -> Any:
    """Return the scheduler's lease and job store for `app.store`, or None to pass.

    A store plugin answers when `app.store` is its own, so every server sharing
    the store shares one lease and one set of jobs. The object implements the
    scheduler's `JobStore` protocol; the SQLite store's answers last.
    """


@hookspec
def jacscale_job_fired(
    app: AppContext, name: str, static: bool, duration: float, success: bool
) -> None:
    """Called after every fire of a scheduled walker or function (`@schedule`).

    `static` is True for jobs declared in the program, False for jobs made
    through /jobs; `success` is False when the run raised.
    """

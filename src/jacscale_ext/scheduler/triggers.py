"""Triggers: every N seconds, a 5-field cron expression (UTC), or one date (UTC).

Cron parsing and next-run computation come from croniter; we only check that an
expression has exactly five fields (croniter also accepts a seconds field) and
turn its errors into messages naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from croniter import croniter
from croniter.croniter import CroniterError

TriggerKind = Literal["interval", "cron", "date"]
KINDS: tuple[str, ...] = ("interval", "cron", "date")


class TriggerError(ValueError):
    """A trigger that cannot work; `field` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Trigger:
    """When a job fires. Exactly one of `interval`, `cron`, `date` is set, matching `kind`.

    `date` is a UTC timestamp (seconds since the epoch).
    """

    kind: TriggerKind
    interval: float | None = None
    cron: str | None = None
    date: float | None = None

    def first_fire(self, now: float) -> float | None:
        """The first fire time after `now` (None: a date that has passed)."""
        if self.kind == "interval":
            assert self.interval is not None
            return now + self.interval
        if self.kind == "cron":
            return cron_next(self.cron or "", now)
        assert self.date is not None
        return self.date if self.date > now else None

    def after_fire(self, scheduled: float, now: float) -> float | None:
        """The fire time that follows the one due at `scheduled`, never in the past.

        Interval jobs keep their cadence (scheduled + interval) unless that has
        already passed (fires were missed): then they continue from `now`.
        """
        if self.kind == "interval":
            assert self.interval is not None
            following = scheduled + self.interval
            return following if following > now else now + self.interval
        if self.kind == "cron":
            return cron_next(self.cron or "", max(scheduled, now))
        return None

    def describe(self) -> dict[str, Any]:
        """The trigger as the API shows it: kind and its one setting (date in ISO-8601)."""
        return {
            "trigger": self.kind,
            "interval": self.interval,
            "cron": self.cron,
            "date": iso(self.date),
        }


def cron_next(expression: str, after: float) -> float:
    """The next time strictly after `after` matching the 5-field cron `expression` (UTC)."""
    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(expression, start).get_next(float))


def check_cron(expression: Any) -> str:
    """A usable 5-field cron expression, or TriggerError naming `cron`."""
    if not isinstance(expression, str) or not expression.strip():
        raise TriggerError("cron", "cron must be a 5-field cron expression such as '0 9 * * *'")
    fields = expression.split()
    if len(fields) != 5:
        raise TriggerError(
            "cron",
            f"cron must have 5 fields (minute hour day month weekday), got {len(fields)}",
        )
    normalised = " ".join(fields)
    try:
        valid = croniter.is_valid(normalised)
    except (CroniterError, ValueError, TypeError):
        valid = False
    if not valid:
        raise TriggerError("cron", f"cron {normalised!r} is not a valid cron expression")
    try:
        cron_next(normalised, datetime.now(UTC).timestamp())
    except (CroniterError, ValueError, TypeError, OverflowError) as exc:
        # e.g. "0 0 31 2 *": valid syntax, but no such day ever comes.
        raise TriggerError("cron", f"cron {normalised!r} never fires: {exc}") from None
    return normalised


def parse_date(value: Any) -> float:
    """An ISO-8601 date-time as a UTC timestamp (no zone given means UTC), or TriggerError."""
    if not isinstance(value, str) or not value.strip():
        raise TriggerError(
            "date", "date must be an ISO-8601 date-time such as 2030-01-31T09:00:00Z"
        )
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise TriggerError(
            "date", f"date {value[:60]!r} is not an ISO-8601 date-time (e.g. 2030-01-31T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_interval(value: Any, minimum: float = 0.0) -> float:
    """A positive, finite number of seconds (at least `minimum`), or TriggerError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TriggerError("interval", "interval must be a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise TriggerError("interval", "interval must be a positive number of seconds")
    if seconds < minimum:
        raise TriggerError("interval", f"interval must be at least {minimum:g} seconds")
    return seconds


def make_trigger(
    kind: Any,
    *,
    interval: Any = None,
    cron: Any = None,
    date: Any = None,
    now: float,
    min_interval: float = 0.0,
    allow_past: bool = False,
) -> Trigger:
    """Validate a trigger from user input (POST/PUT /jobs) or an @schedule spec.

    The setting that matches `kind` is required; the others must be absent. A
    date must lie in the future unless `allow_past` (static jobs log and skip it).
    """
    if kind not in KINDS:
        raise TriggerError("trigger", "trigger must be one of 'interval', 'cron', 'date'")
    given = {"interval": interval, "cron": cron, "date": date}
    for name, value in given.items():
        if name != kind and value is not None:
            raise TriggerError(name, f"{name} does not apply to trigger {kind!r}")
    if given[kind] is None:
        raise TriggerError(kind, f"{kind} is required for trigger {kind!r}")
    if kind == "interval":
        return Trigger("interval", interval=check_interval(interval, min_interval))
    if kind == "cron":
        return Trigger("cron", cron=check_cron(cron))
    when = parse_date(date)
    if when <= now and not allow_past:
        raise TriggerError("date", f"date {iso(when)} is in the past")
    return Trigger("date", date=when)


def from_schedule_spec(spec: Any, now: float) -> Trigger:
    """The trigger of a static `@schedule(interval=... | cron=... | date=...)`."""
    set_fields = [k for k in ("interval", "cron", "date") if getattr(spec, k, None) is not None]
    if len(set_fields) != 1:
        raise TriggerError("schedule", "@schedule needs exactly one of interval=, cron= or date=")
    kind = set_fields[0]
    return make_trigger(
        kind,
        interval=spec.interval,
        cron=spec.cron,
        date=spec.date,
        now=now,
        allow_past=True,
    )


def iso(timestamp: float | None) -> str | None:
    """A UTC timestamp as ISO-8601 with a `Z` (None stays None)."""
    if timestamp is None:
        return None
    text = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")

"""Log output: JSON lines for machines, batched writing off the event loop, and
control characters escaped in every field (no forged or recoloured lines)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

# C0 and C1 controls, DEL, the line/paragraph separators and the bidi overrides:
# characters that end, recolour or reorder a terminal line.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_STANDARD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with control characters written as `\\xNN` / `\\uNNNN` (unchanged if none)."""
    if _CONTROL_RE.search(text) is None:
        return text
    return _CONTROL_RE.sub(_escape_one, text)


class EscapeControlsFilter(logging.Filter):
    """Escape control characters in a record's message and string `extra` fields.

    A request path such as `/x%0a127.0.0.1 "GET /admin" 200` or one holding ESC
    would otherwise write a forged access line or recolour the operator's
    terminal. A traceback keeps its line breaks, but every line of it is indented,
    so text in an exception message can never start a line of its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        message = record.getMessage()
        safe = escape_controls(message)
        if safe is not message or record.args:
            record.msg, record.args = safe, None
        fields = record.__dict__
        for key in fields.keys() - _STANDARD_FIELDS:  # the `extra` fields
            value = fields[key]
            if isinstance(value, str):
                fields[key] = escape_controls(value)
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            lines = (escape_controls(line) for line in text.splitlines())
            record.exc_text = "\n".join("    " + line for line in lines)
        return True


def _msecs(created: float) -> float:
    """The millisecond part of `created`, as a LogRecord computes it."""
    return int((created - int(created)) * 1000) + 0.0


class HumanFormatter(logging.Formatter):
    """`2026-01-02 03:04:05,678 INFO name: message`, with the date text made once a second.

    logging's own `formatTime` calls `time.strftime` for every record; with an
    access line per request that was a tenth of the log's cost.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        # (second, its date text) in one attribute: threads may format at once.
        self._second_text: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """Local time to the millisecond, as logging's default `asctime`."""
        return self._time_text(record.created, record.msecs)

    def _time_text(self, created: float, msecs: float) -> str:
        second = int(created)
        cached_second, text = self._second_text
        if second != cached_second:
            text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
            self._second_text = (second, text)
        return f"{text},{int(msecs):03d}"

    def line(self, created: float, levelname: str, name: str, message: str, extra: dict[str, Any]) -> str:
        """What `format` writes for a record with these fields and no exception (`extra` is not shown)."""
        return f"{self._time_text(created, _msecs(created))} {levelname} {name}: {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and any `extra` fields."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        extra = {
            key: value
            for key, value in record.__dict__.items()
            if key not in self._skip and not key.startswith("_")
        }
        out = self._object(record.created, record.msecs, record.levelname, record.name, record.getMessage(), extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)

    def line(self, created: float, levelname: str, name: str, message: str, extra: dict[str, Any]) -> str:
        """What `format` writes for a record with these fields and no exception."""
        out = self._object(created, _msecs(created), levelname, name, message, extra)
        return json.dumps(out, default=str)

    @staticmethod
    def _object(
        created: float, msecs: float, levelname: str, name: str, message: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z",
            "level": levelname.lower(),
            "logger": name,
            "message": message,
        }
        out.update(extra)
        return out


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose INFO and DEBUG lines are written in batches.

    An access log line per request written straight to stderr cost a system call
    on the event loop for every request, during which a walker thread took the
    GIL: about 9% of the trivial walker's throughput. Here records are formatted
    at once but kept in memory and written by a background thread every
    `interval` seconds (one write for the whole batch). A WARNING or worse, and
    close() (logging.shutdown at exit), write everything pending first, in order.
    """

    def __init__(self, stream: Any = None, interval: float = 0.1) -> None:
        super().__init__(stream)
        self.interval = interval
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run, name="jacscale-log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Format now; write later (at once for WARNING and above)."""
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging's own error path reports it
            self.handleError(record)
            return
        with self._pending_lock:
            self._pending.append(line)
        if record.levelno >= logging.WARNING:
            self.write_pending()

    def add_line(self, line: str) -> None:
        """Queue an already formatted INFO line (see `sole_batching_handler`)."""
        with self._pending_lock:
            self._pending.append(line + self.terminator)

    def write_pending(self) -> None:
        """Write and flush every pending line (in order)."""
        # Not the handler's own lock, which logging holds around emit(): a loop
        # thread logging a line must never wait for a write in progress.
        with self._write_lock:  # one writer at a time keeps batches in order
            with self._pending_lock:
                lines, self._pending = self._pending, []
            if not lines:
                return
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:  # noqa: BLE001 - logging's own error path reports it
                self.handleError(logging.makeLogRecord({"msg": "writing batched log lines"}))

    def flush(self) -> None:
        """Write what is pending."""
        self.write_pending()

    def close(self) -> None:
        """Stop the background writer after writing what is pending."""
        self._stop.set()
        self.write_pending()
        super().close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write_pending()


def sole_batching_handler(logger: logging.Logger) -> BatchingStreamHandler | None:
    """The handler an INFO record of `logger` would reach, when it is the only one and
    nothing but escaping stands between: `configure_logging`'s own set-up, unchanged.

    A caller may then format the line itself and `add_line` it, which writes what
    the record would have written without making one: a LogRecord, the logger's
    and handler's calls and the filter cost the trivial walker about a sixth of
    its throughput (2,050 -> 2,470 req/s without them, one worker, wrk -c8). Any other configuration (another
    handler, a filter, a formatter of the operator's) gets None: log records then.
    """
    if logger.disabled or logger.filters or not logger.isEnabledFor(logging.INFO):
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if type(found) is not BatchingStreamHandler or found.level > logging.INFO:
        return None
    if any(type(f) is not EscapeControlsFilter for f in found.filters):
        return None
    if type(found.formatter) not in (HumanFormatter, JsonFormatter):
        return None
    return found

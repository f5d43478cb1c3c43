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


class HumanFormatter(logging.Formatter):
    """`2026-01-02 03:04:05,678 INFO name: message`, with the date text made once a second.

    logging's own `formatTime` calls `time.strftime` for every record; with an
    access line per request that was a tenth of the log's cost.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """Local time to the millisecond, as logging's default `asctime`."""
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and any `extra` fields."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


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

"""BatchingStreamHandler: log lines leave the emitting thread without a write."""

from __future__ import annotations

import io
import logging
import threading
import time

from jacscale_core.logs import BatchingStreamHandler, HumanFormatter


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return log


def test_info_lines_are_written_by_the_background_thread() -> None:
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, interval=0.05)
    log = _logger(handler, "test.batch.info")
    log.info("one")
    log.info("two")
    assert stream.getvalue() == ""  # not yet: batched
    deadline = time.monotonic() + 5
    while "two" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == "INFO one\nINFO two\n"
    handler.close()


def test_a_warning_writes_everything_pending_in_order() -> None:
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, interval=60)
    log = _logger(handler, "test.batch.warn")
    log.info("before")
    log.warning("careful")
    assert stream.getvalue() == "INFO before\nWARNING careful\n"
    handler.close()


def test_close_writes_what_is_pending() -> None:
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, interval=60)
    log = _logger(handler, "test.batch.close")
    log.info("last words")
    handler.close()
    assert stream.getvalue() == "INFO last words\n"


class _StuckStream(io.StringIO):
    """A stream whose write blocks until released (a full pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, s: str) -> int:
        self.entered.set()
        self.release.wait(10)
        return super().write(s)


def test_logging_does_not_wait_for_a_write_in_progress() -> None:
    stream = _StuckStream()
    handler = BatchingStreamHandler(stream, interval=0.01)
    log = _logger(handler, "test.batch.stuck")
    log.info("first")
    assert stream.entered.wait(5)  # the background thread is now stuck writing
    started = time.perf_counter()
    log.info("second")
    elapsed = time.perf_counter() - started
    stream.release.set()
    handler.close()
    assert elapsed < 0.5
    assert stream.getvalue() == "INFO first\nINFO second\n"


def test_human_formatter_writes_what_loggings_default_format_writes() -> None:
    reference = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    human = HumanFormatter()
    base = 1_767_225_599.0  # the last second of a year: the date text changes below
    for created in (base + 0.001, base + 0.999, base + 1.0, base + 1.5, base + 0.25, base + 86_400.042):
        record = logging.makeLogRecord({"name": "jacscale.access", "levelno": 20,
                                        "levelname": "INFO", "msg": "hello %s", "args": ("you",)})
        record.created = created
        record.msecs = (created - int(created)) * 1000
        assert human.format(record) == reference.format(record)

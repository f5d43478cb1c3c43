"""WebSocket load generator, run as its own process (wrk cannot speak WebSocket).

    python ws_load.py --url ws://127.0.0.1:PORT/ws/EchoMessage --mode echo \
        --clients 10 --frame '{"message": "hi"}' --warmup 1 --runs 3 --duration 3 --out r.json

Speaks WebSocket through ws_client.py (a minimal client: a few µs per frame, so
the server is what is measured). Connects `clients` sockets first (connection set-up is not measured), then:
- echo: every client sends a frame, waits for its answer, and repeats (closed
  loop); one request = one answered frame; latency = send to answer.
- broadcast: client 0 sends a frame and waits until every client (itself
  included) has received the broadcast, then sends the next; one request = one
  broadcast delivered to all; latency = send to last delivery.
Writes {"runs": [{rps, p50_ms, p90_ms, p99_ms, requests, errors, duration_s}]}.
A frame whose answer is not an ok envelope, or that takes over 10 s, is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: ws_client beside it
from ws_client import Closed, LeanSocket, connect  # noqa: E402

ANSWER_TIMEOUT = 10.0


@dataclass
class Tally:
    """Latencies (seconds) and error count of one measuring window."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_failure: str | None = None

    def fail(self, what: str) -> None:
        """Count a failed frame and remember the first failure."""
        self.errors += 1
        if self.first_failure is None:
            self.first_failure = what[:400]


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(tally: Tally, duration: float, cpu_seconds: float = 0.0) -> dict[str, Any]:
    """One run's JSON: throughput, latency percentiles in ms, and this client's CPU use.

    `client_cpu_pct` near 100 means the load generator, not the server, was the limit.
    """
    lat = sorted(tally.latencies)
    return {
        "client_cpu_pct": round(100 * cpu_seconds / duration, 1) if duration > 0 else 0.0,
        "rps": round(len(lat) / duration, 1) if duration > 0 else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p90_ms": round(percentile(lat, 90) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "requests": len(lat),
        "errors": tally.errors,
        "duration_s": round(duration, 2),
    }


def is_ok(answer: str | bytes) -> bool:
    """Whether an answer frame is an ok envelope (cheap check, no full parse)."""
    text = answer.decode() if isinstance(answer, bytes) else answer
    return '"ok":true' in text or '"ok": true' in text


async def echo_window(conns: list[LeanSocket], frame: str, seconds: float) -> tuple[Tally, float]:
    """All clients send-and-wait in a loop for `seconds`; returns the tally and elapsed time."""
    tally = Tally()
    start = time.perf_counter()
    stop_at = start + seconds

    async def client(ws: LeanSocket) -> None:
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                ws.send(frame)
                answer = await ws.recv()
            except Closed as exc:
                tally.fail(f"connection closed: {exc}")
                return
            if is_ok(answer):
                tally.latencies.append(time.perf_counter() - sent)
            else:
                tally.fail(f"answer not ok: {answer!r}")

    # One bound for the window rather than a timer per frame (the generator's own cost).
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client(ws) for ws in conns)), seconds + ANSWER_TIMEOUT
        )
    except TimeoutError:
        tally.fail(f"no answer within {ANSWER_TIMEOUT:g} s")
    return tally, time.perf_counter() - start


async def broadcast_window(
    conns: list[LeanSocket], frame_base: dict[str, Any], seconds: float, seq_start: int
) -> tuple[Tally, float, int]:
    """Client 0 broadcasts in a closed loop for `seconds`; every client must receive each.

    Each socket counts what it receives in a callback as frames arrive (no task
    per socket per broadcast): with 100 clients the generator's own cost per
    frame decided the result otherwise.
    """
    tally = Tally()
    expected = len(conns)
    marker = ""
    received = 0
    bad: str | None = None
    all_in = asyncio.Event()

    def on_text(text: str) -> None:
        nonlocal received, bad
        if marker in text and is_ok(text):
            received += 1
            if received == expected:
                all_in.set()
        elif bad is None:
            bad = text
            all_in.set()

    for ws in conns:
        ws.on_text = on_text
    start = time.perf_counter()
    stop_at = start + seconds
    seq = seq_start
    try:
        while time.perf_counter() < stop_at:
            seq += 1
            marker = f'"bench-{seq}"'
            received = 0
            all_in.clear()
            frame = json.dumps({**frame_base, "message": f"bench-{seq}"})
            sent = time.perf_counter()
            try:
                conns[0].send(frame)
                await asyncio.wait_for(all_in.wait(), ANSWER_TIMEOUT)
            except TimeoutError:
                closed = next((ws.closed for ws in conns if ws.closed), None)
                tally.fail(closed or f"not every client received the broadcast within {ANSWER_TIMEOUT:g} s")
                break  # the sockets are out of step now: end this window
            except Closed as exc:
                tally.fail(f"connection closed: {exc}")
                break
            if bad is not None:
                tally.fail(f"a client got something else: {bad!r}")
                break
            tally.latencies.append(time.perf_counter() - sent)
    finally:
        for ws in conns:
            ws.on_text = None
    return tally, time.perf_counter() - start, seq


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, warm up, run, and return the JSON summary."""
    frame_base = json.loads(args.frame)
    conns = []
    try:
        for _ in range(args.clients):
            conns.append(await connect(args.url))
        runs = []
        first_failure = None
        seq = 0
        for index in range(args.runs + 1):  # window 0 is the warm-up
            seconds = args.warmup if index == 0 else args.duration
            cpu_start = time.process_time()
            if args.mode == "echo":
                tally, elapsed = await echo_window(conns, json.dumps(frame_base), seconds)
            else:
                tally, elapsed, seq = await broadcast_window(conns, frame_base, seconds, seq)
            first_failure = first_failure or tally.first_failure
            if index > 0:
                runs.append(summarise(tally, elapsed, time.process_time() - cpu_start))
            if tally.errors and not tally.latencies:
                raise RuntimeError(f"every frame failed in window {index}: {first_failure}")
        return {"runs": runs, "first_failure": first_failure}
    finally:
        for ws in conns:
            ws.close()


def _loop_factory() -> Any:
    """uvloop's loop when installed (less of the generator's own CPU per frame), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> int:
    """Parse arguments, run, write --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["echo", "broadcast"], required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--frame", required=True, help="JSON object: the walker's fields")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        result = asyncio.run(main_async(args), loop_factory=_loop_factory())
    except Exception as exc:  # noqa: BLE001 - reported to the harness, which records it
        print(f"ws_load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""WebSocket load generator, run as its own process (wrk cannot speak WebSocket).

    python ws_load.py --url ws://127.0.0.1:PORT/ws/EchoMessage --mode echo \
        --clients 10 --frame '{"message": "hi"}' --warmup 1 --runs 3 --duration 3 --out r.json

Connects `clients` sockets first (connection set-up is not measured), then:
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
from typing import Any

import websockets

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
    return '"ok":true' in text.replace(" ", "")


async def echo_window(conns: list[Any], frame: str, seconds: float) -> tuple[Tally, float]:
    """All clients send-and-wait in a loop for `seconds`; returns the tally and elapsed time."""
    tally = Tally()
    start = time.perf_counter()
    stop_at = start + seconds

    async def client(ws: Any) -> None:
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                await ws.send(frame)
                answer = await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT)
            except TimeoutError:
                tally.fail(f"no answer within {ANSWER_TIMEOUT:g} s")
                return
            except websockets.ConnectionClosed as exc:
                tally.fail(f"connection closed: {exc}")
                return
            if is_ok(answer):
                tally.latencies.append(time.perf_counter() - sent)
            else:
                tally.fail(f"answer not ok: {answer!r}")

    await asyncio.gather(*(client(ws) for ws in conns))
    return tally, time.perf_counter() - start


async def broadcast_window(
    conns: list[Any], frame_base: dict[str, Any], seconds: float, seq_start: int
) -> tuple[Tally, float, int]:
    """Client 0 broadcasts in a closed loop for `seconds`; every client must receive each."""
    tally = Tally()
    start = time.perf_counter()
    stop_at = start + seconds
    seq = seq_start
    while time.perf_counter() < stop_at:
        seq += 1
        marker = f"bench-{seq}"
        frame = json.dumps({**frame_base, "message": marker})
        sent = time.perf_counter()
        try:
            await conns[0].send(frame)
            answers = await asyncio.wait_for(
                asyncio.gather(*(ws.recv() for ws in conns)), ANSWER_TIMEOUT
            )
        except TimeoutError:
            tally.fail(f"not every client received the broadcast within {ANSWER_TIMEOUT:g} s")
            break  # the sockets are out of step now: end this window
        except websockets.ConnectionClosed as exc:
            tally.fail(f"connection closed: {exc}")
            break
        got = [a.decode() if isinstance(a, bytes) else a for a in answers]
        bad = [a for a in got if marker not in a or not is_ok(a)]
        if not bad:
            tally.latencies.append(time.perf_counter() - sent)
        else:
            tally.fail(f"{len(bad)} of {len(got)} clients got something else: {bad[0]!r}")
            break
    return tally, time.perf_counter() - start, seq


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, warm up, run, and return the JSON summary."""
    frame_base = json.loads(args.frame)
    conns = []
    try:
        for _ in range(args.clients):
            conns.append(await websockets.connect(args.url, open_timeout=15, max_size=2**24))
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
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


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
        result = asyncio.run(main_async(args))
    except Exception as exc:  # noqa: BLE001 - reported to the harness, which records it
        print(f"ws_load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What dropping the reports copy from `data.result` saves: bytes and encode time.

jac-scale 0.2.31 answered a walker with its reports twice, in `data.reports` and
again inside `data.result` (the walker's `reports` attribute). jacscale renders
the walker without it (`codec.walker_result`). This script serves nothing: it
runs `list_todos` of examples/todo/app.jac in-process on roots holding 100 and
1,000 todos, then renders and encodes the same finished walker both ways:

- **with the copy**: `codec.to_jsonable(walker)` (what jaclang's serializer and
  jac-scale give) as `data.result`;
- **without**: `codec.walker_result(walker)`, what the server sends.

It prints a Markdown table: response bytes; CPU microseconds (this process, all
threads) to render and encode one response, both ways, interleaved (medians); and
a whole in-process request now (walk, render, encode; no HTTP) for scale. Run:
`.venv/bin/python benchmarks/envelope_size.py`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaclang import JacRuntime as Jac  # noqa: E402

from jacscale_core import codec  # noqa: E402
from jacscale_core.app import create_app, startup  # noqa: E402
from jacscale_core.codec import Rendered  # noqa: E402
from jacscale_core.principal import Principal  # noqa: E402


def per_call_us(fns: list[Callable[[], Any]], n: int, rounds: int = 7) -> list[float]:
    """Median CPU microseconds per call of each fn (batches of `n`, interleaved)."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, samples, strict=True):
            t0 = time.process_time()
            for _ in range(n):
                fn()
            out.append((time.process_time() - t0) / n * 1e6)
    return [sorted(s)[len(s) // 2] for s in samples]


def main() -> None:
    """Measure both envelopes for list 100 and list 1,000 and print the table."""
    logging.getLogger().setLevel(logging.ERROR)
    app = create_app(ROOT / "examples" / "todo" / "app.jac", data_dir=tempfile.mkdtemp())
    ctx = app.state.jacscale
    asyncio.run(startup(ctx))
    ex = ctx.executor
    list_todos = ctx.program.endpoints["list_todos"]
    rows = []
    for count, n in ((100, 200), (1000, 20)):
        root = asyncio.run(ex.create_root())
        who = Principal(user_id="bench", root_id=root, kind="user")
        asyncio.run(ex.run(ctx.program.endpoints["bulk_add"], {"count": count}, who))
        with ex.request_context(UUID(root)) as (rctx, _):
            walker = list_todos.target()
            Jac.spawn(walker, rctx.user_root.archetype)

            def encode(render_result: Callable[[Any], Any], walker: Any = walker) -> bytes:
                """Render (graph loaded, as the executor does) and encode one response."""
                result = Rendered(render_result(walker))
                reports = Rendered(codec.to_jsonable(walker.reports))
                return codec.encode(codec.ok_envelope(result, reports, "rid"))

            def old(encode: Callable[..., bytes] = encode) -> bytes:
                return encode(codec.to_jsonable)  # the walker with its reports: jac-scale's result

            def new(encode: Callable[..., bytes] = encode) -> bytes:
                return encode(codec.walker_result)

            old_bytes, new_bytes = len(old()), len(new())
            old_us, new_us = per_call_us([old, new], n)

        def request(who: Principal = who) -> None:
            asyncio.run(ex.run(list_todos, {}, who))

        (whole_us,) = per_call_us([request], max(1, n // 4), rounds=3)
        rows.append(
            f"| list {count:,} | {old_bytes:,} | {new_bytes:,} | {1 - new_bytes / old_bytes:.0%} "
            f"| {old_us:,.0f} | {new_us:,.0f} | {old_us - new_us:,.0f} | {whole_us:,.0f} |"
        )
    print("| workload | bytes with the copy | bytes now | smaller by | render+encode with the "
          "copy (µs) | now (µs) | saved (µs) | whole request now (µs) |")  # fmt: skip
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    print("\n".join(rows))
    ex.close()


if __name__ == "__main__":
    main()

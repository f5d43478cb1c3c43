"""Reading the change log: which records other servers committed since our last look.

Every committing batch inserts one `jacscale_changes` row per record it wrote,
inside its own transaction, so a row is visible exactly when the write is.
`seq` comes from a sequence: numbers are handed out in the order transactions
reach that insert, not the order they commit, and a rolled-back transaction
leaves a number unused. A reader that only remembered the highest number it had
seen would skip a slow transaction that commits a lower number later.

So a reader keeps, besides its cursor (the highest number seen), the numbers
below it that it has not seen ("holes"). A hole is either a transaction still
in flight or one that rolled back. Each poll is one statement that reads the
rows after the cursor and the holes, and the statement's own snapshot
(`pg_current_snapshot()`): a hole found when the snapshot's `xmax` was X
belongs to a transaction whose id is below X (a batch's first statement takes
its transaction id, before it draws a number). Once a later snapshot's `xmin`
is at least X, every such transaction has ended; a hole still invisible in
that same snapshot rolled back and is forgotten. No timers, no guesses.

A reader more than READ_LIMIT rows behind, or holding more than MAX_HOLES
holes, drops its whole cache instead (poll returns None) and starts again from
the newest row.
"""

from __future__ import annotations

from uuid import UUID

import psycopg

READ_LIMIT = 2_000
MAX_HOLES = 10_000
START_WINDOW = 10_000  # at start, numbers this far back that are not visible yet are holes

_POLL = """
SELECT NULL::bigint, NULL::uuid, NULL::bigint,
       pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint
  FROM pg_current_snapshot() AS s
UNION ALL
(SELECT seq, id, writer, NULL, NULL FROM jacscale_changes
  WHERE seq > %s OR seq = ANY(%s) ORDER BY seq LIMIT %s)
"""


_RESTART = """
SELECT NULL::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint
UNION ALL
(SELECT seq, NULL FROM jacscale_changes
  WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM jacscale_changes) - %s)
"""


class ChangeReader:
    """One server's position in the change log (the caller serialises polls)."""

    def __init__(self, writer: int) -> None:
        """Read for the store whose own rows carry `writer` (those are skipped)."""
        self.writer = writer
        self.cursor = 0
        self.holes: dict[int, int] = {}  # seq -> snapshot xmax when it was found missing

    def start(self, conn: psycopg.Connection) -> None:
        """Begin at the newest row (our cache is empty: nothing before it matters)."""
        self._restart(conn)

    def poll(self, conn: psycopg.Connection) -> list[UUID] | None:
        """Ids other writers committed since the last poll; None: drop the whole cache."""
        rows = conn.execute(_POLL, (self.cursor, list(self.holes), READ_LIMIT + 1)).fetchall()
        snapshot = next(r for r in rows if r[0] is None)
        xmin, xmax = int(snapshot[3]), int(snapshot[4])
        entries = [r for r in rows if r[0] is not None]
        if len(entries) > READ_LIMIT:
            self._restart(conn)
            return None
        changed: list[UUID] = []
        seen: set[int] = set()
        for seq, anchor_id, writer, _, _ in entries:
            seen.add(seq)
            if writer != self.writer:
                changed.append(anchor_id)
        for seq in seen:
            self.holes.pop(seq, None)
        # Holes whose transactions have all ended and are still invisible rolled back.
        for seq, found_at in list(self.holes.items()):
            if xmin >= found_at:
                del self.holes[seq]
        newest = max((s for s in seen if s > self.cursor), default=self.cursor)
        for seq in range(self.cursor + 1, newest):
            if seq not in seen:
                self.holes[seq] = xmax
        self.cursor = newest
        if len(self.holes) > MAX_HOLES:
            self._restart(conn)
            return None
        return changed

    def _restart(self, conn: psycopg.Connection) -> None:
        """Move the cursor to the newest row; numbers below it not visible yet become holes.

        Only the last START_WINDOW numbers are checked: a transaction still
        between drawing its number and committing after that many later ones
        committed is beyond any statement timeout.
        """
        rows = conn.execute(_RESTART, (START_WINDOW,)).fetchall()
        xmax = int(next(r for r in rows if r[0] is None)[1])
        visible = {int(r[0]) for r in rows if r[0] is not None}
        newest = max(visible, default=0)
        self.holes = {
            seq: xmax for seq in range(max(1, newest - START_WINDOW), newest) if seq not in visible
        }
        self.cursor = newest

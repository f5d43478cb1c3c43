"""Driving a served program from a test: sign up, read reports, a store outage under load.

`sign_up` registers and logs in a user (the Authorization header); `reports` is
a 200 answer's reports. `write_through_outage` (for a store plugin's tests: no
acknowledged write is lost) drives a served to-do program (a walker that adds a titled
item, one that lists them) with concurrent writers, takes the store down once the
writes flow (`stop`), brings it back after `down_seconds` (`start`), keeps writing
until enough writes succeeded after the restart, then lists what is stored. The
test asserts on the outcome: every acknowledged title stored, how refusals were
answered, whether a refused write was nevertheless committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


def sign_up(client: Any, email: str, password: str = "pw-123456") -> dict[str, str]:
    """Register and log in through `client` (an httpx or Starlette test client); the
    Authorization header of the new user."""
    r = client.post("/user/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    r = client.post("/user/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def reports(response: Any) -> list[Any]:
    """The envelope's reports (fails the test on a non-200 answer)."""
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["reports"])


@dataclass
class OutageLoad:
    """What the writers saw, and what the program lists afterwards."""

    acked: list[str] = field(default_factory=list)  # titles answered 200
    refused: dict[str, int] = field(default_factory=dict)  # title -> its non-200 status
    statuses: list[int] = field(default_factory=list)  # every answer; 0: no answer
    stored: set[str] = field(default_factory=set)  # the titles listed after the load

    @property
    def lost(self) -> list[str]:
        """Acknowledged titles the store does not have."""
        return [t for t in self.acked if t not in self.stored]


def write_through_outage(
    base: str,
    headers: Mapping[str, str],
    *,
    stop: Callable[[], Any],
    start: Callable[[], Any],
    down_seconds: float,
    timeout: float = 120.0,
    lanes: int = 4,
    add: str = "/walker/add_todo",
    listing: str = "/walker/list_todos",
) -> OutageLoad:
    """Write `{"title": ...}` to `add` from `lanes` clients while the store goes down and up.

    `stop` and `start` are blocking (run in a thread). The whole load is bounded
    by `timeout` seconds; the listing (`listing`'s first report) fills `stored`.
    """
    out = OutageLoad()
    phase = {"restarted": False, "after": 0}
    warmed_up = asyncio.Event()

    async def writer(client: httpx.AsyncClient, lane: int) -> None:
        for i in range(10_000):
            title = f"lane{lane}-{i}"
            try:
                r = await client.post(add, json={"title": title}, headers=dict(headers))
            except httpx.HTTPError:
                out.statuses.append(0)
                continue
            out.statuses.append(r.status_code)
            if r.status_code == 200:
                out.acked.append(title)
                if len(out.acked) >= 30:
                    warmed_up.set()
                if phase["restarted"]:
                    phase["after"] += 1
                    if phase["after"] >= 20:
                        return
            else:
                out.refused[title] = r.status_code
                await asyncio.sleep(0.05)

    async def chaos() -> None:
        await warmed_up.wait()
        await asyncio.to_thread(stop)
        await asyncio.sleep(down_seconds)
        await asyncio.to_thread(start)
        phase["restarted"] = True

    async def load() -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            await asyncio.wait_for(
                asyncio.gather(chaos(), *(writer(client, lane) for lane in range(lanes))), timeout
            )

    asyncio.run(load())
    listed = httpx.post(base + listing, headers=dict(headers), timeout=30)
    out.stored = {t["title"] for t in reports(listed)[0]}
    return out

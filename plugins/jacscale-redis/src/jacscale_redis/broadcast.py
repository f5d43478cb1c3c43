"""WebSocket broadcasts across pods over Redis pub/sub (hook: jacscale_redis.hooks.broadcast).

Active when REDIS_URL is set. Every worker of every pod subscribes to one
channel, `jacscale:broadcast:<app name>` (override with
JACSCALE_BROADCAST_CHANNEL when several deployments of the same app share a
Redis), publishes each broadcast there, and ignores its own messages (it has
already delivered them locally).

Pub/sub is fire-and-forget: while Redis is unreachable, broadcasts reach the
sockets of the worker that ran the walker only; the subscriber reconnects with
backoff (0.1 s to 5 s) and /readyz reports the outage. Start-up fails with a
clear message (password masked) when Redis does not answer within 5 s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jacscale_ext.broadcast import (
    BroadcastMessage,
    Deliver,
    ListeningBus,
    stop_task,
)
from jacscale_ext.kvstore import mask_uri, scrub

log = logging.getLogger("jacscale.redis.broadcast")

CONNECT_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 5.0
POLL_SECONDS = 1.0


class RedisBroadcastBus(ListeningBus):
    """A BroadcastBus on one Redis pub/sub channel."""

    errors = (RedisError, OSError, TimeoutError)
    lost = "subscription lost"
    waiting = "not subscribed to"

    def __init__(self, url: str, channel: str) -> None:
        """Prepare the client (nothing connects before `start`)."""
        super().__init__(url, channel)
        self.client: Any = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
            health_check_interval=15,
        )

    def _describe(self, exc: BaseException) -> str:
        return f"Redis at {mask_uri(self.url)}: {scrub(str(exc), self.url) or type(exc).__name__}"

    def _healthy(self) -> str:
        return f"redis pub/sub {self.channel} at {mask_uri(self.url)}"

    async def start(self, deliver: Deliver) -> None:
        """Subscribe (waiting at most 5 s), then keep the subscription alive in a task."""
        self._deliver = deliver
        try:
            await asyncio.wait_for(self.client.ping(), CONNECT_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            await self.client.aclose()
            raise RuntimeError(f"broadcast bus: {self._describe(exc)} does not answer") from None
        self._task = asyncio.create_task(self._listen_forever(), name="jacscale-redis-broadcast")
        try:
            await asyncio.wait_for(self._listening.wait(), CONNECT_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise RuntimeError(
                f"broadcast bus: could not subscribe to {self.channel} on {mask_uri(self.url)}"
            ) from None

    async def publish(self, message: BroadcastMessage) -> None:
        """PUBLISH the message (bounded by a timeout; one retry for a stale pooled connection)."""
        data = msgspec.json.encode(message)
        for attempt in (1, 2):
            try:
                await asyncio.wait_for(self.client.publish(self.channel, data), PUBLISH_TIMEOUT)
                return
            except RedisConnectionError as exc:
                if attempt == 2:
                    raise ConnectionError(self._describe(exc)) from None
            except (RedisError, OSError) as exc:
                raise ConnectionError(self._describe(exc)) from None

    async def close(self) -> None:
        """Stop listening and close the client."""
        await stop_task(self._task)
        self._task = None
        await self.client.aclose()

    async def _listen(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self._now_listening()
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=POLL_SECONDS
                )
                if message is not None and message.get("type") == "message":
                    self._receive(message["data"])
                    await asyncio.sleep(0)  # let socket writers drain between messages
        finally:
            try:
                await asyncio.wait_for(pubsub.aclose(), CONNECT_TIMEOUT)
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("broadcast: closing the old subscription failed: %s", exc)

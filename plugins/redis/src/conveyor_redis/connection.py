"""The connections several queues share (``make_shared``): a pool, and one pipelined
connection for the hot path."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor import ConveyorError
from conveyor_redis.config import RedisConfig
from conveyor_redis.keys import Keys
from conveyor_redis.pipelining import AutoPipeline

__all__ = ["Connection", "SCRIPT", "reconnect_delay", "retrying", "TRANSIENT"]

T = TypeVar("T")

TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors after which a call may be sent again."""

SCRIPT = files("conveyor_redis").joinpath("tasks.lua").read_text(encoding="utf-8")
"""The one Lua script holding every state change (its header documents the key layout)."""


def reconnect_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures: 0.1 s doubling to 5 s, ±25%."""
    base: float = min(5.0, 0.1 * 2 ** min(failures - 1, 10))
    return base * random.uniform(0.75, 1.25)


async def retrying(
    call: Callable[[bool], Awaitable[T]], attempts: int = 4, *, failed: int = 0
) -> T:
    """``call(resent)`` again after a dropped connection, with a short backoff.

    ``resent`` is True from the second try on: the first may have been applied
    with only its reply lost, and the scripts use it to recognise their own write.
    ``failed``: tries the caller already made itself (its first, inline).
    """
    for attempt in range(failed, attempts):
        if attempt:
            await asyncio.sleep(reconnect_delay(attempt))
        try:
            return await call(attempt > 0)
        except TRANSIENT:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Connection:
    """A pool (blocking reads, listings, transactions), a pipelined connection (every
    script call), the script, and a count of the backends using them."""

    def __init__(self, config: RedisConfig) -> None:
        # No blind resending by redis-py: an ack resent after a lost reply must say
        # so (see ``retrying``), or it would be refused as stale by its own first copy.
        retry = Retry(NoBackoff(), retries=0)
        pool = aioredis.BlockingConnectionPool.from_url(
            config.url,
            max_connections=config.max_connections,
            timeout=config.socket_timeout,
            socket_timeout=config.socket_timeout,
            socket_connect_timeout=config.connect_timeout,
            health_check_interval=30,
            retry=retry,
        )
        self.url = config.url
        # Typed loosely: redis-py annotates replies as unions of every possible shape.
        self.client: Any = aioredis.Redis(connection_pool=pool)
        self.script: Any = self.client.register_script(SCRIPT)
        self.pipeline = AutoPipeline(pool, SCRIPT, config.socket_timeout)
        self.users = 0
        self.layout_checked = False

    async def check_layout(self, keys: Keys) -> None:
        """Refuse a prefix that holds tasks in the earlier key layout, whose ready
        and delayed entries this version's scripts would never find."""
        old = (keys.base + "seq", keys.base + "all")
        if await self.pipeline.execute("EXISTS", *old):
            raise ConveyorError(
                f"prefix {keys.prefix!r} on redis {self.where()} holds tasks in the key layout"
                f" of an earlier conveyor-redis ({' or '.join(old)} exists): drain it with that"
                " version, or use another prefix"
            )
        self.layout_checked = True

    def where(self) -> str:
        """The server, for messages, without a password."""
        kwargs = self.client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    async def release(self) -> None:
        """One user fewer; the pool is closed when none is left."""
        self.users -= 1
        if self.users <= 0:
            await self.pipeline.close()
            await self.client.aclose()

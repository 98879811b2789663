"""``push_many`` is all or none on Redis: a pusher killed mid-push, an item that fails mid-push.

A push bigger than one script call (500 tasks) runs its calls in one MULTI/EXEC,
so the server applies all of them or, if the connection ends before EXEC, none.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import redis.asyncio as aioredis
from conveyor_redis.keys import Keys, glob_escape

from conveyor import Backend, ConveyorError, Status

Open = Callable[..., Backend]
PUSHER = Path(__file__).with_name("bulk_pusher.py")
N = 2000
KILLS = 6


class Count:
    """What is stored under the test's prefix: task hashes, and the queue's Pending index."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.keys = Keys(prefix)

    async def hashes(self) -> int:
        pattern = glob_escape(self.keys.prefix) + ":t:*"
        return len([k async for k in self.client.scan_iter(match=pattern, count=1000)])

    async def pending(self, queue: str) -> int:
        return int(await self.client.zcard(self.keys.queue_status(queue, Status.PENDING)))


def _run(url: str, prefix: str, queue: str, kill_after: float | None) -> str:
    proc = subprocess.Popen(
        [sys.executable, str(PUSHER), url, prefix, queue, str(N)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "go"
    if kill_after is None:
        proc.wait(timeout=120)
        return proc.stdout.read().strip()
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.stdout.read().strip()


async def test_a_pusher_killed_inside_a_bulk_push_leaves_all_or_none(
    redis_url: str, redis_prefix: str
) -> None:
    count = Count(redis_url, redis_prefix)
    done, took = _run(redis_url, redis_prefix, "whole", None).split()
    assert done == "done"
    assert await count.pending("whole") == N
    before = await count.hashes()
    outcomes = []
    for k in range(KILLS):
        queue = f"killed-{k}"
        # Spread the kills over the push and a little past it (a kill after EXEC keeps all).
        _run(redis_url, redis_prefix, queue, random.uniform(0.0, 1.5 * float(took)))
        after = await count.hashes()
        stored = after - before - 1  # the pusher's warm-up task is pushed before "go"
        before = after
        assert stored == await count.pending(queue)
        outcomes.append(stored)
    await count.client.aclose()
    assert set(outcomes) <= {0, N}, outcomes
    print(f"kills inside a {N}-task push: {outcomes.count(0)} stored none, "
          f"{outcomes.count(N)} stored all")  # fmt: skip


async def test_an_item_that_fails_inside_a_bulk_push_stores_none(
    redis_open: Open, redis_url: str, redis_prefix: str
) -> None:
    backend = redis_open()
    template = await backend.fetch_by_id(await backend.push("template", queue="scratch"))
    assert template is not None
    items = [attrs.evolve(template, args=i, queue="bulk") for i in range(1800)]
    # Past the first three script calls: their arguments are already in the transaction.
    items[1700] = attrs.evolve(items[1700], priority=2**63)
    with pytest.raises(ConveyorError, match="64-bit"):
        await backend.push_many(items)
    count = Count(redis_url, redis_prefix)
    assert await count.pending("bulk") == 0
    assert await count.hashes() == 1  # the template
    assert len(await backend.push_many(items[:1700])) == 1700
    assert await count.pending("bulk") == 1700
    await count.client.aclose()
    await backend.aclose()

"""WaitForCompletion: pub/sub on a channel per task, never polling in a loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from conveyor import TaskId, TaskNotFound, TaskResult, hookimpl
from conveyor_redis.connection import reconnect_delay
from conveyor_redis.errors import FAILURES, guarded, translate
from conveyor_redis.records import to_result

if TYPE_CHECKING:
    from conveyor_redis.keys import Keys

__all__ = ["WaitHooks"]

log = logging.getLogger("conveyor.redis")

RECHECK = 5.0
"""Seconds between status reads while waiting, a safety net for a message lost to a
dropped connection; the wake-up itself comes from the finish message."""


class WaitHooks:
    """``wait_for`` and ``check_status`` of ``RedisBackend``."""

    client: Any
    connection: Any
    keys: Keys

    async def _read(self, ids: Sequence[TaskId]) -> list[list[bytes | None]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hmget(self.keys.task(tid), "s", "res", "err")
            rows: list[list[bytes | None]] = await pipe.execute()
        return rows

    @hookimpl
    @guarded
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        out = []
        for tid, (status, result, error) in zip(task_ids, await self._read(task_ids), strict=True):
            if status is not None:
                done = to_result(tid, status, result, error)
                if done is not None:
                    out.append(done)
        return out

    async def _messages(
        self, pubsub: Any, channels: dict[bytes, TaskId], left: float | None
    ) -> list[TaskId]:
        """Ids announced finished: blocks for the first message, then takes what else is there."""
        wait = RECHECK if left is None else min(RECHECK, left)
        found: list[TaskId] = []
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
        while message is not None:
            tid = channels.get(message["channel"])
            if tid is not None and tid not in found:
                found.append(tid)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
        return found

    @hookimpl
    async def wait_for(
        self, task_ids: Sequence[TaskId], timeout: float | None
    ) -> AsyncIterator[TaskResult[bytes]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        waiting = list(dict.fromkeys(task_ids))
        channels = {self.keys.finished_channel(tid).encode(): tid for tid in waiting}
        pubsub = self.client.pubsub()
        try:
            # Subscribe first, then read: a task finishing in between is seen either way.
            try:
                await pubsub.subscribe(*channels)
            except FAILURES as exc:
                raise translate(exc, self.connection.where()) from exc
            check = list(waiting)
            first = True
            failures = 0
            while waiting:
                try:
                    rows = await self._read(check) if check else []
                except RedisError as exc:
                    failures += 1
                    log.warning("redis unreachable while waiting for results: %s", exc)
                    await asyncio.sleep(reconnect_delay(failures))
                    check = list(waiting)
                    continue
                for tid, (status, result, error) in zip(check, rows, strict=True):
                    if status is None:
                        if first:
                            raise TaskNotFound(f"no task {tid} to wait for")
                        waiting.remove(tid)  # vacuumed meanwhile: nothing more will come
                        continue
                    done = to_result(tid, status, result, error)
                    if done is not None and tid in waiting:
                        waiting.remove(tid)
                        yield done
                first = False
                if not waiting:
                    break
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{len(waiting)} task(s) had not finished after {timeout} s")
                try:
                    check = await self._messages(pubsub, channels, left)
                    failures = 0
                except RedisError as exc:
                    failures += 1
                    log.warning("redis unreachable while waiting for results: %s", exc)
                    await asyncio.sleep(reconnect_delay(failures))
                    check = []
                if not check:
                    # No message for a while (or the connection dropped): read them all once.
                    check = list(waiting)
        finally:
            await pubsub.aclose()

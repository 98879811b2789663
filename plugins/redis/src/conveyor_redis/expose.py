"""Listings and metrics (Expose) read from the status indexes, one page at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor import (
    Filter,
    QueueInfo,
    RunningWorker,
    Statistic,
    Status,
    Task,
    WorkerInfo,
    hookimpl,
)
from conveyor.expose import status_statistics
from conveyor_redis.records import from_micros, micros, to_task

if TYPE_CHECKING:
    from conveyor.clock import Clock
    from conveyor_redis.keys import Keys

__all__ = ["ExposeHooks"]


class ExposeHooks:
    """The Expose hooks of ``RedisBackend`` (which provides ``client``, ``keys``, ``clock``)."""

    client: Any
    keys: Keys
    clock: Clock

    async def _page(self, index: str, filter: Filter) -> list[Task[bytes]]:
        start = filter.offset
        ids = await self.client.zrange(index, start, start + filter.limit - 1)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for raw in ids:
                pipe.hgetall(self.keys.task(raw.decode()))
            hashes = await pipe.execute()
        return [to_task(raw.decode(), h) for raw, h in zip(ids, hashes, strict=True) if h]

    @hookimpl
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        keys = self.keys
        index = (
            keys.queue_all(queue)
            if filter.status is None
            else keys.queue_status(queue, filter.status)
        )
        return await self._page(index, filter)

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        index = self.keys.all if filter.status is None else self.keys.status(filter.status)
        return await self._page(index, filter)

    @hookimpl
    async def list_queues(self) -> Sequence[QueueInfo]:
        names = {raw.decode() for raw in await self.client.smembers(self.keys.queues)}
        workers = await self._workers()
        names.update(w.queue for w in workers)
        return [
            QueueInfo(
                name,
                list(await self.metrics(name)),
                [w.id for w in workers if w.queue == name],
                [],
            )
            for name in sorted(names)
        ]

    async def _workers(self) -> list[RunningWorker]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.workers)
            pipe.zrange(self.keys.workers_seen, 0, -1, withscores=True)
            infos, seen = await pipe.execute()
        last = {name.decode(): score for name, score in seen}
        rows = []
        for raw, blob in sorted(infos.items()):
            name = raw.decode()
            info = json.loads(blob)
            rows.append(
                RunningWorker(
                    name,
                    info["queue"],
                    "redis",
                    from_micros(info["started_at"]),
                    from_micros(int(last.get(name, info["started_at"]))),
                    info.get("layers", ""),
                )
            )
        return rows

    @hookimpl
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        return [w for w in await self._workers() if queue is None or w.queue == queue]

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        now = int(self.clock.time() * 1_000_000)
        info = {
            "queue": worker.queue,
            "concurrency": worker.concurrency,
            "started_at": micros(worker.started_at),
            "layers": worker.layers,
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.workers, worker.name, json.dumps(info))
            pipe.zadd(self.keys.workers_seen, {worker.name: now})
            pipe.sadd(self.keys.queues, worker.queue)
            await pipe.execute()

    @hookimpl
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        keys = self.keys
        async with self.client.pipeline(transaction=False) as pipe:
            for status in Status:
                pipe.zcard(
                    keys.status(status) if queue is None else keys.queue_status(queue, status)
                )
            counts: list[int] = await pipe.execute()
        return status_statistics(dict(zip(Status, counts, strict=True)))

"""Listings and metrics (Expose) read from the status indexes, one page at a time."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
from collections.abc import Iterable, Sequence
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
from conveyor.rules.authoring import status_statistics
from conveyor_redis.errors import guarded
from conveyor_redis.records import from_micros, micros, to_task

if TYPE_CHECKING:
    from conveyor import Clock
    from conveyor_redis.keys import Keys

__all__ = ["ExposeHooks"]

log = logging.getLogger("conveyor.redis")

NAME_SCAN = 500
"""Ids read per round trip while a listing filters by task name."""


class ExposeHooks:
    """The Expose hooks of ``RedisBackend`` (which provides ``client``, ``keys``, ``clock``)."""

    client: Any
    connection: Any
    keys: Keys
    clock: Clock

    async def _page(self, indexes: Sequence[str], filter: Filter) -> list[Task[bytes]]:
        """One page of the ids in ``indexes`` merged in id (creation) order, as tasks.

        A single index is read from the page's offset; several are each read from
        their start to the page's end and merged, so a deep page costs
        ``len(indexes) * (offset + limit)`` ids read, never more.
        """
        if filter.name is not None:
            ids = await self._named(indexes, filter)
        else:
            ids = await self._ids(indexes, filter.offset, filter.offset + filter.limit)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for raw in ids:
                pipe.hgetall(self.keys.task(raw.decode()))
            hashes = await pipe.execute()
        tasks = []
        for raw, h in zip(ids, hashes, strict=True):
            if h:
                task_id = raw.decode("utf-8", "replace")
                try:
                    tasks.append(to_task(task_id, h))
                except (KeyError, ValueError, TypeError, OverflowError) as exc:
                    # One unusable record must not hide the others: it is left out, named.
                    log.warning(
                        "task %s on redis %s has an unusable record (%s: %s), left out of"
                        " the listing; inspect HGETALL %s",
                        task_id, self.connection.where(), type(exc).__name__, exc,
                        self.keys.task(task_id),
                    )  # fmt: skip
        return tasks

    async def _ids(self, indexes: Sequence[str], start: int, end: int) -> list[bytes]:
        """Ids ``start`` to ``end`` of ``indexes`` merged in id order."""
        if len(indexes) == 1:
            found: list[bytes] = await self.client.zrange(indexes[0], start, end - 1)
            return found
        # One MULTI/EXEC: a task moving between two indexes is seen in exactly one.
        async with self.client.pipeline(transaction=True) as pipe:
            for index in indexes:
                pipe.zrange(index, 0, end - 1)
            lists = await pipe.execute()
        return list(itertools.islice(heapq.merge(*lists), start, end))

    async def _named(self, indexes: Sequence[str], filter: Filter) -> list[bytes]:
        """The page of ids whose task is named ``filter.name``: the indexes are read
        ``NAME_SCAN`` ids at a time and each task's name looked up, so the cost grows
        with the tasks listed up to the page, not only with the page."""
        want, skip = filter.limit, filter.offset
        wanted = filter.name.encode() if filter.name is not None else b""
        out: list[bytes] = []
        position = 0
        while len(out) < want:
            ids = await self._ids(indexes, position, position + NAME_SCAN)
            if not ids:
                break
            position += len(ids)
            async with self.client.pipeline(transaction=False) as pipe:
                for raw in ids:
                    pipe.hget(self.keys.task(raw.decode()), "n")
                names = await pipe.execute()
            for raw, name in zip(ids, names, strict=True):
                if name == wanted:
                    if skip:
                        skip -= 1
                    elif len(out) < want:
                        out.append(raw)
        return out

    def _indexes(self, queues: Iterable[str], status: Status | None) -> list[str]:
        statuses = list(Status) if status is None else [status]
        return [self.keys.queue_status(q, s) for q in queues for s in statuses]

    async def _queue_names(self) -> list[str]:
        return sorted(raw.decode() for raw in await self.client.smembers(self.keys.queues))

    @hookimpl
    @guarded
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        return await self._page(self._indexes([queue], filter.status), filter)

    @hookimpl
    @guarded
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        indexes = self._indexes(await self._queue_names(), filter.status)
        return await self._page(indexes, filter) if indexes else []

    @hookimpl
    @guarded
    async def list_queues(self) -> Sequence[QueueInfo]:
        names = set(await self._queue_names())
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
    @guarded
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        return [w for w in await self._workers() if queue is None or w.queue == queue]

    @hookimpl
    @guarded
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
    @guarded
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        queues = [queue] if queue is not None else await self._queue_names()
        async with self.client.pipeline(transaction=True) as pipe:
            for index in self._indexes(queues, None):
                pipe.zcard(index)
            counts: list[int] = await pipe.execute() if queues else []
        totals = dict.fromkeys(Status, 0)
        statuses = list(Status)
        for i, count in enumerate(counts):
            totals[statuses[i % len(statuses)]] += count
        return status_statistics(totals)

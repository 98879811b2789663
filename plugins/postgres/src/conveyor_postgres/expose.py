"""Listings and metrics (Expose): pages by index, counts capped, estimates past the cap."""

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
from conveyor.rules.authoring import at, status_statistics
from conveyor_postgres.records import COLUMNS, to_task

if TYPE_CHECKING:
    from conveyor_postgres.config import PostgresConfig
    from conveyor_postgres.connection import Conn, Connection
    from conveyor_postgres.sql import Statements

__all__ = ["ExposeHooks", "EXACT_UP_TO"]

EXACT_UP_TO = 100_000
"""Per status, metrics count exactly up to this many tasks; past it they report the
planner's estimate (from the table's statistics) instead of scanning the index."""

_STATUSES = [s.value for s in Status]


class ExposeHooks:
    """The Expose hooks of ``PostgresBackend`` (which provides ``connection`` and ``config``)."""

    connection: Connection
    config: PostgresConfig
    sql: Statements

    @property
    def _t(self) -> str:
        return f'"{self.config.schema}".tasks'

    async def _rows(self, query: str, params: Sequence[Any], doing: str) -> list[Any]:
        async def call(conn: Conn, _: bool) -> list[Any]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        return await self.connection.run(call, doing)

    async def _page(self, queue: str | None, filter: Filter) -> list[Task[bytes]]:
        where, params = [], []
        if queue is not None:
            where.append("queue = %s")
            params.append(queue)
        if filter.status is not None:
            where.append("status = %s")
            params.append(filter.status.value)
        if filter.name is not None:
            where.append("name = %s")
            params.append(filter.name)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {COLUMNS} FROM {self._t}{clause} ORDER BY id LIMIT %s OFFSET %s"
        rows = await self._rows(query, [*params, filter.limit, filter.offset], "listing tasks")
        return [to_task(r) for r in rows]

    @hookimpl
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        return await self._page(queue, filter)

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        return await self._page(None, filter)

    async def _queue_names(self) -> list[str]:
        # A skip scan over tasks_status (status, queue, id): one index probe per
        # (status, queue) pair present, never a read of every row.
        query = (
            "WITH RECURSIVE s(status) AS (SELECT unnest(%s::text[])),"
            f" r AS (SELECT s.status, (SELECT min(queue) FROM {self._t} t"
            "   WHERE t.status = s.status) AS queue FROM s"
            f" UNION ALL SELECT r.status, (SELECT min(queue) FROM {self._t} t"
            "   WHERE t.status = r.status AND t.queue > r.queue) FROM r"
            "   WHERE r.queue IS NOT NULL)"
            f" SELECT DISTINCT queue FROM r WHERE queue IS NOT NULL"
            f' UNION SELECT queue FROM "{self.config.schema}".workers'
        )
        rows = await self._rows(query, [_STATUSES], "listing queues")
        return sorted(r[0] for r in rows)

    @hookimpl
    async def list_queues(self) -> Sequence[QueueInfo]:
        workers = await self._workers(None)
        out = []
        for name in await self._queue_names():
            stats = list(await self.metrics(name))
            out.append(QueueInfo(name, stats, [w.id for w in workers if w.queue == name], []))
        return out

    async def _workers(self, queue: str | None) -> list[RunningWorker]:
        query = (
            f'SELECT name, queue, started_at, last_seen, layers FROM "{self.config.schema}".workers'
            + (" WHERE queue = %s" if queue is not None else "")
            + " ORDER BY name"
        )
        rows = await self._rows(query, [queue] if queue is not None else [], "listing workers")
        return [RunningWorker(r[0], r[1], "postgres", r[2], r[3], r[4]) for r in rows]

    @hookimpl
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        return await self._workers(queue)

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        now = at(self.config.clock.time())
        params = (worker.name, worker.queue, worker.concurrency, worker.started_at, now,
                  worker.layers)  # fmt: skip

        async def call(conn: Conn, _: bool) -> None:
            await conn.execute(self.sql.register, params)

        await self.connection.run(call, "registering a worker")

    @hookimpl
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        where = "status = s.status" + (" AND queue = %s" if queue is not None else "")
        query = (
            "SELECT s.status, (SELECT count(*) FROM (SELECT 1 FROM"
            f" {self._t} WHERE {where} LIMIT {EXACT_UP_TO + 1}) c)"
            " FROM unnest(%s::text[]) AS s(status)"
        )
        params: list[Any] = [queue] if queue is not None else []

        async def call(conn: Conn, _: bool) -> dict[Status, int]:
            # The correlated subquery's queue parameter comes first in the text.
            cur = await conn.execute(query, [*params, _STATUSES])
            counts = {Status(r[0]): int(r[1]) for r in await cur.fetchall()}
            for status, n in counts.items():
                if n > EXACT_UP_TO:
                    counts[status] = max(n, await self._estimate(conn, status, queue))
            return counts

        counts = await self.connection.run(call, "reading metrics")
        return status_statistics(counts)

    async def _estimate(self, conn: Conn, status: Status, queue: str | None) -> int:
        where = "status = %s" + (" AND queue = %s" if queue is not None else "")
        params = [status.value] + ([queue] if queue is not None else [])
        cur = await conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self._t} WHERE {where}",
            params,
        )
        row = await cur.fetchone()
        plan = row[0] if row else None
        if isinstance(plan, str):
            plan = json.loads(plan)
        try:
            return int(plan[0]["Plan"]["Plan Rows"])  # type: ignore[index]
        except (TypeError, KeyError, IndexError, ValueError):
            return 0

"""TaskSink: one-by-one pushes on the lane, batches by INSERT or COPY, resends.

A one-by-one push is the statement a bare client would send, and should cost about
what it costs. So the common one (no application transaction, the lane free) goes
straight from the hook to the prepared INSERT on the lane's cursor (the plain one,
or the one that notifies at the window's leading edge): no pool checkout, no
closure, no retry wrapper. Anything else (the lane taken by a concurrent push, an
error) takes the general path, ``_push_one`` over ``Connection.run``, which keeps
every promise the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg

from conveyor import BackendUnavailable, Task, TaskId, hookimpl
from conveyor_postgres.connection import TRANSIENT
from conveyor_postgres.records import meta_bytes
from conveyor_postgres.transaction import current_connection
from conveyor_postgres.writes import copy_tasks, insert_quiet, insert_tasks

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from conveyor_postgres.config import PostgresConfig
    from conveyor_postgres.connection import Conn, Connection, Cursor
    from conveyor_postgres.sql import Statements

__all__ = ["PushHooks", "COPY_FROM"]

COPY_FROM = 64
"""Pushes of more tasks than this go by binary COPY (measured: about 3x an INSERT over
unnested arrays at 50,000 tasks); fewer go as one INSERT statement."""


class PushHooks:
    """``push`` and ``push_weak`` of ``PostgresBackend``."""

    config: PostgresConfig
    connection: Connection
    sql: Statements

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        own = current_connection(self.config.schema)
        if own is not None:
            # The application's transaction: its commit stores them, its rollback not.
            await insert_tasks(own, self.sql, tasks)
            return [t.id for t in tasks]
        if len(tasks) != 1:
            return await self._push_many(tasks)
        task = tasks[0]
        connection = self.connection
        lane = connection.lane
        if lane is None:
            await self._push_one(task)
            return [task.id]
        pool = connection.pool
        assert pool is not None  # a lane exists only while its pool is open
        connection.lane = None
        notices = connection.notices
        sent = notices.due(task.queue)
        try:
            # Autocommit: committed when this returns, the server's own durability.
            await lane.execute(
                self.sql.insert_quiet if sent is None else self.sql.insert,
                (task.id, task.queue, task.max_attempts, task.run_at, task.priority, task.args,
                 meta_bytes(task.meta), task.name),
                prepare=True,
            )  # fmt: skip
        except BaseException as exc:
            await self._lane_failed(lane, pool, task, exc)
            return [task.id]
        # One statement in autocommit that succeeded leaves the connection idle.
        if connection.lane is None and connection.pool is pool:
            connection.lane = lane
        else:  # a concurrent push put another one there, or the store closed meanwhile
            await connection.give_back(pool, lane.connection)
        if sent is None:
            notices.skipped(task.queue)
        else:
            notices.notified(task.queue, sent)
        return [task.id]

    async def _lane_failed(
        self, lane: Cursor, pool: AsyncConnectionPool[Conn], task: Task[bytes], exc: BaseException
    ) -> None:
        """After the lane's INSERT of ``task`` raised ``exc``: what the general path does."""
        connection = self.connection
        if isinstance(exc, psycopg.errors.UniqueViolation):  # only the quiet INSERT raises it
            await connection.give_back(pool, lane.connection)
            connection.notices.skipped(task.queue)  # stored already: a push skips ids stored
            return
        if isinstance(exc, TRANSIENT):
            await pool.putconn(lane.connection)  # the pool discards a broken one
            await self._push_one(task, exc)
            return
        await connection.give_back(pool, lane.connection)
        raise exc

    async def _push_one(self, task: Task[bytes], first: BaseException | None = None) -> None:
        """One task, committed on return; it notifies only at the window's leading edge.

        ``first``: the TRANSIENT error a try on the lane already met; then it is sent
        again (the conflict clause skips a first try that landed)."""
        notices = self.connection.notices
        queue = task.queue
        sent = None if first is not None else notices.due(queue)

        async def write(conn: Conn, resent: bool) -> float | None:
            if sent is None and not resent:
                try:
                    await insert_quiet(conn, self.sql, task)
                except psycopg.errors.UniqueViolation:
                    pass  # stored already: a push skips ids already stored
                return None
            # A resend may follow a first try that landed: the conflict clause skips it.
            started = time.monotonic()
            await insert_tasks(conn, self.sql, [task])
            return started if sent is None else sent

        doing = "pushing 1 task(s)"
        try:
            if first is None:
                covered = await self.connection.run(write, doing)
            else:
                covered = await self.connection.retry(write, first, doing)
        except BackendUnavailable as exc:
            raise BackendUnavailable(
                f"{exc} If the connection dropped after sending, it may be stored:"
                f" fetch_by_id({task.id!r}) tells"
            ) from exc
        if covered is None:
            notices.skipped(queue)
        else:
            notices.notified(queue, covered)

    async def _push_many(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        call = copy_tasks if len(tasks) > COPY_FROM else insert_tasks

        async def write(conn: Conn, resent: bool) -> None:
            if resent and len(tasks) > COPY_FROM:
                cur = await conn.execute(self.sql.exists, (tasks[0].id,))
                if await cur.fetchone() is not None:
                    return  # the first try committed; only its reply was lost
            await call(conn, self.sql, tasks)

        try:
            await self.connection.run(write, f"pushing {len(tasks)} task(s)")
        except BackendUnavailable as exc:
            raise BackendUnavailable(
                f"{exc} If the connection dropped after sending, they may be stored:"
                f" fetch_by_id({tasks[0].id!r}) tells"
            ) from exc
        return [t.id for t in tasks]

    @hookimpl
    async def push_weak(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.push(tasks)

"""WaitForCompletion: woken by the finish notification, never polling in a loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from conveyor import TaskId, TaskNotFound, TaskResult, hookimpl
from conveyor_postgres.listener import FIN
from conveyor_postgres.records import to_result

if TYPE_CHECKING:
    from conveyor_postgres.connection import Conn, Connection
    from conveyor_postgres.sql import Statements

__all__ = ["WaitHooks", "RECHECK"]

RECHECK = 5.0
"""Seconds between status reads while waiting with no notification: a safety net for
one lost while the listener reconnected (which wakes every waiter anyway)."""

_FINAL = ("Done", "Killed")


class WaitHooks:
    """``wait_for`` and ``check_status`` of ``PostgresBackend``."""

    connection: Connection
    sql: Statements

    async def _read(self, ids: Sequence[TaskId]) -> dict[str, Any]:
        async def call(conn: Conn, _: bool) -> dict[str, Any]:
            cur = await conn.execute(self.sql.status_of, (list(ids),))
            return {row[0]: row for row in await cur.fetchall()}

        return await self.connection.run(call, "reading task statuses")

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        rows = await self._read(task_ids)
        out = []
        for tid in task_ids:
            row = rows.get(tid)
            if row is not None and row[1] in _FINAL:
                out.append(to_result(tid, row[1], row[2], row[3]))
        return out

    @hookimpl
    async def wait_for(
        self, task_ids: Sequence[TaskId], timeout: float | None
    ) -> AsyncIterator[TaskResult[bytes]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        waiting = list(dict.fromkeys(task_ids))
        listener = self.connection.listener
        channel = self.sql.fin_channel
        await listener.ensure()
        first = True
        while waiting:
            # Armed before reading, so a finish in between still wakes us.
            wake = listener.arm(channel, FIN)
            try:
                rows = await self._read(waiting)
                for tid in list(waiting):
                    row = rows.get(tid)
                    if row is None:
                        if first:
                            raise TaskNotFound(f"no task {tid} to wait for")
                        waiting.remove(tid)  # vacuumed meanwhile: nothing more will come
                        continue
                    if row[1] in _FINAL:
                        waiting.remove(tid)
                        yield to_result(tid, row[1], row[2], row[3])
                first = False
                if not waiting:
                    return
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{len(waiting)} task(s) had not finished after {timeout} s")
                wait = RECHECK if left is None else min(RECHECK, left)
                try:
                    await asyncio.wait_for(asyncio.shield(wake), wait)
                except TimeoutError:
                    pass
            finally:
                listener.disarm(channel, FIN, wake)

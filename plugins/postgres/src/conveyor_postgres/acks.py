"""Batched acks: the acks made in one event-loop turn go to the server as one statement.

A worker with N lanes finishing in the same turn sends one UPDATE over unnested
arrays instead of N round trips and N commits (the lever that took River and
graphile-worker about tenfold). While a batch is on the wire, new acks gather
for the next one, so a busy worker's acks group themselves like a group commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor import Done, Kill, Outcome, Release, Retry, StaleLease, Status, Task

if TYPE_CHECKING:
    from conveyor_postgres.connection import Conn, Connection
    from conveyor_postgres.sql import Statements

__all__ = ["AckBatcher"]

MAX_BATCH = 1000


class _Ack:
    __slots__ = ("error", "future", "id", "kind", "result", "run_at", "task", "token")

    def __init__(self, task: Task[bytes], outcome: Outcome, future: asyncio.Future[None]) -> None:
        self.task, self.future = task, future
        self.id, self.token = task.id, task.lease_token or ""
        self.result: bytes | None = None
        self.error: str | None = None
        self.run_at: datetime | None = None
        kind = type(outcome)
        if kind is Done:
            self.kind, self.result = "done", outcome.result  # type: ignore[union-attr]
        elif kind is Retry:
            self.kind = "retry"
            self.error, self.run_at = outcome.error, outcome.run_at  # type: ignore[union-attr]
        elif kind is Kill:
            self.kind, self.error = "kill", outcome.error  # type: ignore[union-attr]
        elif kind is Release:
            self.kind = "release"
        else:
            raise TypeError(f"unknown outcome {outcome!r}")


class AckBatcher:
    """Collects acks and sends them in batches over ``connection``."""

    def __init__(self, connection: Connection, sql: Statements) -> None:
        self.connection = connection
        self.sql = sql
        self._pending: list[_Ack] = []
        self._sending = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        """Queue the ack for this turn's batch; return once the server has it."""
        loop = asyncio.get_running_loop()
        entry = _Ack(task, outcome, loop.create_future())
        self._pending.append(entry)
        if not self._sending:
            self._sending = True
            # call_soon: after every callback already due in this turn has run, so
            # the other lanes finishing now get into the same batch.
            loop.call_soon(self._start)
        await entry.future

    def _start(self) -> None:
        task = asyncio.ensure_future(self._send_all())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    refused = await self.connection.run(self._sender(batch), "acknowledging")
                except BaseException as exc:
                    for entry in batch:
                        if not entry.future.done():
                            entry.future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for entry in batch:
                    if entry.future.done():
                        continue
                    why = refused.get(entry.id)
                    if why is None:
                        entry.future.set_result(None)
                    else:
                        entry.future.set_exception(why)
        finally:
            self._sending = False
            if self._pending:  # arrived while the last batch failed its way out
                self._sending = True
                asyncio.get_running_loop().call_soon(self._start)

    def _sender(
        self, batch: Sequence[_Ack]
    ) -> Callable[[Conn, bool], Awaitable[dict[str, Exception]]]:
        return lambda conn, resent: self._send(conn, batch, resent)

    async def _send(self, conn: Conn, batch: Sequence[_Ack], resent: bool) -> dict[str, Exception]:
        """One statement for ``batch``; the refusals, by id."""
        if all(a.kind == "done" for a in batch):
            params: tuple[list[Any], ...] = (
                [a.id for a in batch], [a.token for a in batch], [a.result for a in batch]
            )  # fmt: skip
            cur = await conn.execute(self.sql.ack_done, params)
            rows = await cur.fetchall()
            if rows or resent:  # a resend's first copy may have landed, unannounced
                self.connection.notices.finished()
        else:
            cur = await conn.execute(
                self.sql.ack,
                (
                    [a.id for a in batch], [a.token for a in batch], [a.kind for a in batch],
                    [a.result for a in batch], [a.error for a in batch],
                    [a.run_at for a in batch],
                ),
            )  # fmt: skip
            rows = await cur.fetchall()
        if len(rows) == len(batch):
            return {}
        applied = {row[0] for row in rows}
        missing = [a for a in batch if a.id not in applied]
        return await self._refusals(conn, missing, resent)

    async def _refusals(
        self, conn: Conn, missing: Sequence[_Ack], resent: bool
    ) -> dict[str, Exception]:
        cur = await conn.execute(self.sql.why, ([a.id for a in missing],))
        stored: dict[str, Any] = {row[0]: row for row in await cur.fetchall()}
        out: dict[str, Exception] = {}
        for a in missing:
            row = stored.get(a.id)
            who = a.task.lock_by
            if row is None:
                out[a.id] = StaleLease(f"task {a.id} no longer exists; the ack was refused")
                continue
            _, status, token, last_token, holder = row
            if resent and last_token == a.token:
                continue  # our own first copy landed; only its reply was lost
            if status in (Status.RUNNING.value, Status.QUEUED.value):
                out[a.id] = StaleLease(
                    f"task {a.id} is now held by {holder!r} under another lease;"
                    f" the ack from {who!r} is out of date and was refused"
                )
            else:
                out[a.id] = StaleLease(
                    f"task {a.id} is {status}, no longer held by {who!r};"
                    " this ack is out of date and was refused"
                )
            del token
        return out

    async def close(self) -> None:
        """Wait for the batches on the wire."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

"""The PostgreSQL backend: fenced SKIP LOCKED claims, batched acks, LISTEN/NOTIFY wake-up."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import attrs

from conveyor import (
    BackendUnavailable,
    InvalidTransition,
    Outcome,
    Release,
    StaleLease,
    Status,
    Task,
    TaskId,
    TaskNotFound,
    WorkerInfo,
    hookimpl,
)
from conveyor.rules import new_token
from conveyor.rules.authoring import at
from conveyor_postgres import schema
from conveyor_postgres.acks import AckBatcher
from conveyor_postgres.config import PostgresConfig, config_from_url
from conveyor_postgres.connection import TRANSIENT, Conn, Connection, reconnect_delay
from conveyor_postgres.expose import ExposeHooks
from conveyor_postgres.pushes import PushHooks
from conveyor_postgres.records import decode_meta, meta_bytes, to_task
from conveyor_postgres.sql import Statements
from conveyor_postgres.waiting import WaitHooks

__all__ = ["PostgresBackend"]

log = logging.getLogger("conveyor.postgres")

BATCH = 1000
"""Rows per statement of the maintenance operations (abandon, vacuum)."""
_HELD = (Status.RUNNING, Status.QUEUED)

RELEASE_WAIT = 2.0
"""Seconds a poll cancelled mid-claim waits for what that claim took to be handed back
before it ends (then the release goes on in the background): long enough for a
healthy server, short enough that a hung one does not hold up a worker's stop."""

LOOK_AGAIN = 0.25
"""Seconds after a push notification within which an idle worker claims once more
before its long sleep: a pusher that died between a plain INSERT and the trailing
notification owed for it (see ``notices``) delays that task by this, not ``idle_wait``."""


class PostgresBackend(PushHooks, WaitHooks, ExposeHooks):
    """One queue in a PostgreSQL schema; ``make_shared`` gives more queues over the same pool."""

    Config = PostgresConfig
    config_from_url = staticmethod(config_from_url)

    def __init__(self, config: PostgresConfig | None = None, shared: Connection | None = None):
        self.config = config or PostgresConfig()
        self.connection = shared or Connection(self.config)
        self.connection.users += 1
        self.sql = Statements(self.config.schema)
        self.clock = self.config.clock
        self.acks = AckBatcher(self.connection, self.sql)
        # Tasks handed to each worker by this object and not yet acked: how many more
        # a claim may take without running ahead of the worker's free slots.
        self._outstanding: dict[str, int] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._closed = False

    def _now(self) -> datetime:
        return at(self.clock.time())

    # --- migrate -------------------------------------------------------------------

    @hookimpl
    async def migrate(self, apply: bool) -> str:
        conn = await self.connection.connect()
        try:
            if apply:
                return await schema.apply(conn, self.config.schema)
            version = await schema.current_version(conn, self.config.schema)
            return schema.plan(self.config.schema, version)
        finally:
            await conn.close()

    # --- Backend ---------------------------------------------------------------------

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        buffer: deque[Task[bytes]] = deque()
        listener = self.connection.listener
        channel, queue = self.sql.push_channel, self.config.queue
        idle = False
        failures = 0
        try:
            while True:
                if buffer:
                    yield buffer.popleft()
                    continue
                wake: asyncio.Future[None] | None = None
                try:
                    if idle:
                        # Armed before the claim looks, so a push in between still wakes it.
                        await listener.ensure()
                        wake = listener.arm(channel, queue)
                    due = await self._claim(worker, buffer)
                    if not buffer and wake is not None:
                        await self._sleep(wake, due)
                        await self._claim(worker, buffer)
                    failures = 0
                except (*TRANSIENT, BackendUnavailable) as exc:
                    failures += 1
                    delay = reconnect_delay(failures)
                    log.warning(
                        "PostgreSQL %s unreachable while polling queue %r (%s); retrying in %.1f s",
                        self.connection.where, queue, exc, delay,
                    )  # fmt: skip
                    yield None
                    await asyncio.sleep(delay)
                    continue
                finally:
                    if wake is not None:
                        listener.disarm(channel, queue, wake)
                if buffer:
                    idle = False
                    continue
                idle = True
                yield None
        finally:
            if buffer:
                await self._release_unstarted(buffer)

    async def _sleep(self, wake: asyncio.Future[None], due: datetime | None) -> None:
        timeout = self.config.idle_wait
        since = self.connection.listener.since_push(self.config.queue)
        if since is not None and since < LOOK_AGAIN:
            timeout = min(timeout, LOOK_AGAIN - since)
        if due is not None:
            # Due already but not claimed: another claim holds its row for an instant.
            timeout = min(timeout, max((due - self._now()).total_seconds(), 0.02))
        try:
            await asyncio.wait_for(asyncio.shield(wake), timeout)
        except TimeoutError:
            pass

    async def _claim(self, worker: WorkerInfo, into: deque[Task[bytes]]) -> datetime | None:
        """Claim up to the worker's free slots into ``into``; if none, the next due time."""
        name = worker.name
        want = max(1, worker.concurrency - self._outstanding.get(name, 0))
        now = self._now()
        until = now + timedelta(seconds=self.config.lease_seconds)
        token = new_token() + ":"
        params = {"q": self.config.queue, "now": now, "n": want, "w": name, "tok": token,
                  "until": until}  # fmt: skip
        # Not sent again after a lost reply: that claim may have landed, and its tasks
        # come back when the lease lapses (at-least-once) rather than twice now.
        sent = asyncio.ensure_future(self._claim_rows(params))
        try:
            rows, due = await asyncio.shield(sent)
        except asyncio.CancelledError:
            # The claim still lands: what it took goes straight back rather than stay
            # held by a worker that will never start it, before the cancel goes on (for
            # up to RELEASE_WAIT), so a poll made after the cancelled one sees them.
            release = asyncio.ensure_future(self._release_claimed(sent, name, token, until))
            self._background.add(release)
            release.add_done_callback(self._background.discard)
            await asyncio.wait((release,), timeout=RELEASE_WAIT)
            raise
        into.extend(self._claimed(rows, name, token, until))
        return due

    async def _claim_rows(self, params: dict[str, Any]) -> tuple[list[Any], datetime | None]:
        if self.connection.claims is None:
            await self.connection.get_pool()
        claims = self.connection.claims
        assert claims is not None
        async with claims.connection() as conn:
            cur = await conn.execute(self.sql.claim, params)
            rows = await cur.fetchall()
            if rows:
                return rows, None
            cur = await conn.execute(self.sql.next_due, (params["q"],))
            row = await cur.fetchone()
            return [], row[0] if row else None

    def _claimed(
        self, rows: list[Any], name: str, token: str, until: datetime
    ) -> list[Task[bytes]]:
        queue = self.config.queue
        tasks = [
            Task(
                TaskId(r[0]),
                bytes(r[6]),
                queue,
                Status.RUNNING,
                r[2],
                r[3],
                r[4],
                r[5],
                None,
                r[7],
                name,
                token + r[0],
                until,
                decode_meta(r[8]),
                r[9],
            )
            for r in rows
            if r[1] == "Running"
        ]
        # RETURNING follows no order: put them back in delivery order.
        tasks.sort(key=lambda t: (-t.priority, t.run_at, t.id))
        self._outstanding[name] = self._outstanding.get(name, 0) + len(tasks)
        return tasks

    async def _release_claimed(
        self, sent: asyncio.Future[Any], name: str, token: str, until: datetime
    ) -> None:
        await asyncio.wait((sent,))
        if sent.cancelled() or sent.exception() is not None:
            return
        rows, _ = sent.result()
        if rows:
            await self._release_unstarted(deque(self._claimed(rows, name, token, until)))

    async def _release_unstarted(self, buffer: deque[Task[bytes]]) -> None:
        """Hand back tasks claimed for free slots the worker never filled."""
        tasks = list(buffer)
        buffer.clear()
        results = await asyncio.shield(
            asyncio.gather(
                *(self.ack(t, Release("worker stopped before starting it")) for t in tasks),
                return_exceptions=True,
            )
        )
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("could not release unstarted task %s: %s", task.id, result)

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        now = self._now()
        params = {"now": now, "w": worker.name,
                  "until": now + timedelta(seconds=self.config.lease_seconds)}  # fmt: skip

        async def beat(conn: Conn, _: bool) -> None:
            await conn.execute(self.sql.heartbeat, params)

        # Not resume_abandoned here: the worker calls it after each heartbeat, and a
        # heartbeat itself only extends (the rules table holds the two apart).
        await self.connection.run(beat, "sending a heartbeat")

    @hookimpl
    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.acks.close()
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            await self.connection.release()

    # --- Ack ---------------------------------------------------------------------------

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        name = task.lock_by or ""
        left = self._outstanding.get(name)
        if left is not None:
            self._outstanding[name] = max(0, left - 1)
        await self.acks.ack(task, outcome)

    # --- task management -----------------------------------------------------------------

    async def _one(self, query: str, params: Any, doing: str) -> Any:
        async def call(conn: Conn, _: bool) -> Any:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

        return await self.connection.run(call, doing)

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        row = await self._one(self.sql.fetch, (task_id,), "fetching a task")
        return None if row is None else to_task(row)

    @hookimpl
    async def update(self, task: Task[bytes]) -> None:
        if task.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {task.max_attempts}")

        async def call(conn: Conn, _: bool) -> None:
            async with conn.transaction():
                cur = await conn.execute(self.sql.fetch_locked, (task.id,))
                row = await cur.fetchone()
                if row is None:
                    raise TaskNotFound(f"no task {task.id} to update")
                stored = to_task(row)
                if task.status is not stored.status:
                    if task.status in _HELD or stored.status in _HELD:
                        raise InvalidTransition(stored.status, task.status)
                    stored.status.check(task.status)
                if task.max_attempts < stored.attempt:
                    raise ValueError(
                        f"max_attempts {task.max_attempts} is below the {stored.attempt}"
                        f" attempt(s) task {task.id} has had"
                    )
                await conn.execute(
                    self.sql.update,
                    (
                        task.args, task.priority, task.run_at, task.max_attempts,
                        meta_bytes(task.meta), task.name, task.result, task.last_error,
                        task.status.value, task.id,
                    ),
                )  # fmt: skip
                await self._notify(conn, stored.queue, task.status)

        await self.connection.run(call, "updating a task")

    async def _notify(self, conn: Conn, queue: str, status: Status) -> None:
        if status in (Status.PENDING, Status.FAILED):
            await conn.execute(self.sql.notify, (self.sql.push_channel, queue))
        elif status in (Status.DONE, Status.KILLED):
            await conn.execute(self.sql.notify, (self.sql.fin_channel, ""))

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        async def call(conn: Conn, resent: bool) -> None:
            async with conn.transaction():
                cur = await conn.execute(self.sql.fetch_locked, (task.id,))
                row = await cur.fetchone()
                if row is None:
                    raise TaskNotFound(f"no task {task.id} to reschedule")
                stored = to_task(row)
                if task.lease_token is not None and (
                    stored.status not in _HELD or stored.lease_token != task.lease_token
                ):
                    raise StaleLease(
                        f"task {task.id} is {stored.status.value} under another lease;"
                        f" the reschedule from {task.lock_by!r} is out of date and was refused"
                    )
                if stored.status in (Status.DONE, Status.KILLED):
                    raise InvalidTransition(stored.status, Status.PENDING)
                # A held task gets its attempt back, as Release does, so no claim
                # ever exceeds max_attempts (the settled rule; rules_table holds it).
                attempt = stored.attempt
                if stored.status in _HELD:
                    attempt = max(0, attempt - 1)
                    name = stored.lock_by or ""
                    if name in self._outstanding:
                        self._outstanding[name] = max(0, self._outstanding[name] - 1)
                await conn.execute(
                    self.sql.reschedule, (run_at, attempt, task.lease_token, task.id)
                )
                await self._notify(conn, stored.queue, Status.PENDING)

        await self.connection.run(call, "rescheduling a task")

    @hookimpl
    async def vacuum(self) -> int:
        removed = 0

        async def call(conn: Conn, _: bool) -> int:
            cur = await conn.execute(self.sql.vacuum, (BATCH,))
            return cur.rowcount

        while True:
            n = await self.connection.run(call, "vacuuming")
            removed += n
            if n < BATCH:
                return removed

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        row = await self._one(self.sql.resume, (self._now(), task_id), "resuming a task")
        return row is not None

    @hookimpl
    async def resume_abandoned(self) -> int:
        touched = 0
        while True:
            row = await self._one(
                self.sql.abandon, {"now": self._now(), "n": BATCH}, "resuming abandoned tasks"
            )
            n = int(row[0]) if row else 0
            touched += n
            if n < BATCH:
                return touched

    # --- ConfigExt, MakeShared ---------------------------------------------------------------

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue

    @hookimpl
    def make_shared(self, queue: str) -> object:
        return PostgresBackend(attrs.evolve(self.config, queue=queue), self.connection)

    def __repr__(self) -> str:
        return (
            f"<PostgresBackend {self.connection.where} schema={self.config.schema!r}"
            f" queue={self.config.queue!r}>"
        )

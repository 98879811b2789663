"""LISTEN/NOTIFY: one connection per store waits for pushes and finishes, and wakes
whoever armed a waiter for them.

Channels (payload in brackets): ``<schema>_push`` [queue name] when a task of that
queue may have become ready (push, retry, release, resume, reschedule, update);
``<schema>_fin`` [''] when tasks finished (Done or Killed). PostgreSQL delivers one
notification per distinct channel and payload per transaction, so a bulk push or a
batch of acks sends one, not one per row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg

from conveyor import ConveyorError

if TYPE_CHECKING:
    from conveyor_postgres.connection import Connection

__all__ = ["Listener", "channels"]

log = logging.getLogger("conveyor.postgres")

FIN = ""
"""The key finish waiters arm under (finish notifications name no queue)."""


def channels(schema: str) -> tuple[str, str]:
    """The push and finish channel names of ``schema``."""
    return f"{schema}_push", f"{schema}_fin"


class Listener:
    """Waiters keyed by (channel, queue); a background task reads the notifications."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.push, self.fin = channels(connection.schema)
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._heard: dict[str, float] = {}
        """Queue -> when its latest push notification arrived (monotonic)."""

    async def ensure(self) -> None:
        """Start listening (once); return when LISTEN has taken effect."""
        if self._started is None or (self._task is not None and self._task.done()):
            self._started = asyncio.get_running_loop().create_future()
            self._task = asyncio.ensure_future(self._run())
        await asyncio.shield(self._started)

    def arm(self, channel: str, key: str) -> asyncio.Future[None]:
        """A future resolved by the next notification on ``channel`` for ``key``.

        Arm before reading the state it is about, so a notification sent in between
        is not missed.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((channel, key), []).append(future)
        return future

    def disarm(self, channel: str, key: str, future: asyncio.Future[None]) -> None:
        """Forget ``future`` (its wait ended another way)."""
        waiting = self._waiters.get((channel, key))
        if waiting is not None:
            try:
                waiting.remove(future)
            except ValueError:
                pass
            if not waiting:
                del self._waiters[(channel, key)]

    def since_push(self, queue: str) -> float | None:
        """Seconds since the latest push notification for ``queue`` arrived (None: none yet)."""
        heard = self._heard.get(queue)
        return None if heard is None else time.monotonic() - heard

    def _wake(self, channel: str, key: str) -> None:
        for future in self._waiters.pop((channel, key), ()):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for channel, key in list(self._waiters):
            self._wake(channel, key)

    async def _run(self) -> None:
        started = self._started
        assert started is not None
        failures = 0
        from conveyor_postgres.connection import TRANSIENT, reconnect_delay

        while True:
            try:
                conn = await self.connection.connect()
            except ConveyorError as exc:
                if not started.done():
                    started.set_exception(exc)
                    return
                failures += 1
                await asyncio.sleep(reconnect_delay(failures))
                continue
            self._conn = conn
            try:
                await conn.execute(f'LISTEN "{self.push}"; LISTEN "{self.fin}"')
                failures = 0
                if not started.done():
                    started.set_result(None)
                else:
                    # Back after a drop: what was notified meanwhile is lost, so
                    # every waiter looks again.
                    self._wake_all()
                async for note in conn.notifies():
                    if note.channel == self.fin:
                        self._wake(self.fin, FIN)
                    else:
                        self._heard[note.payload] = time.monotonic()
                        self._wake(self.push, note.payload)
            except TRANSIENT as exc:
                log.warning("PostgreSQL %s: listener lost (%s); reconnecting",
                            self.connection.where, exc)  # fmt: skip
                self._wake_all()
                failures += 1
                await asyncio.sleep(reconnect_delay(failures))
            finally:
                self._conn = None
                try:
                    await conn.close()
                except Exception:  # noqa: S110 - closing a broken connection
                    pass

    async def close(self) -> None:
        """Stop listening; wake every waiter."""
        task, self._task = self._task, None
        self._started = None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: S110 - stopping it
                pass
        self._wake_all()

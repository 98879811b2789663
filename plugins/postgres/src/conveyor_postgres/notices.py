"""Debounced notifications: one ``pg_notify`` per channel and payload per window, none left owed.

A single push that notifies costs its statement a CTE and the commit a write to the
server's notification queue (measured: about a fifth of a one-by-one push). Worse,
a notifying transaction holds a lock that every notifying transaction of the server
shares until its commit is flushed, so notifying commits never overlap: two worker
processes' acks queued behind each other's WAL flush. Idle workers (and waiters)
need one notification after something they cannot see yet, not one per row:

- a push notifies in its own statement when this process sent none for its queue
  in the last ``window`` seconds (the leading edge: a lone push wakes at once);
- a push inside the window goes as a plain INSERT; once it has committed, a
  trailing notification is scheduled for the window's end unless one that started
  after that commit already covers it. Sent after the commit, it wakes every idle
  worker to a claim that sees the row;
- acks that finished tasks do not notify in their statement: once they committed,
  the finish notification goes out at once (or at the window's end if one just went).

Notifications sent on their own commit asynchronously (``synchronous_commit = off``
for that one transaction): they carry no data, so they need not wait for a flush,
and they hold the shared lock only for an instant. So a task waits at most about
1.5 windows for its wake-up. If the process dies between a plain INSERT and its
trailing notification, workers still look again shortly after the last
notification they received (``backend.LOOK_AGAIN``); waiters read statuses every
``waiting.RECHECK`` seconds anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    from conveyor_postgres.connection import Conn, Connection

__all__ = ["Notices"]

log = logging.getLogger("conveyor.postgres")

Key = tuple[str, str]
"""A notification: (channel, payload)."""


class Notices:
    """Per notification: when this process last sent it, and what still needs one."""

    def __init__(self, connection: Connection, push: str, fin: str, window: float) -> None:
        self.connection = connection
        self.push, self.fin = push, fin
        self.window = window
        self._started: dict[Key, float] = {}
        """When the latest such notification (in a statement or on its own) was sent."""
        self._covered: dict[Key, float] = {}
        """Send time of the latest one known committed: it covers every write
        committed before then."""
        self._uncovered: dict[Key, float] = {}
        """Commit time of the latest write that went without one."""
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Future[Any]] = set()

    def due(self, queue: str) -> float | None:
        """The send time to record if a push to ``queue`` starting now must notify, else None."""
        key = (self.push, queue)
        now = time.monotonic()
        last = self._started.get(key)
        if last is None or now - last >= self.window:
            self._started[key] = now
            return now
        return None

    def notified(self, queue: str, sent: float) -> None:
        """A push notification for ``queue`` sent at ``sent`` has committed."""
        self._mark_covered((self.push, queue), sent)

    def skipped(self, queue: str) -> None:
        """A push to ``queue`` without a notification has just committed."""
        # Only the timer: in a stream of pushes the next one past the window
        # notifies in its own statement, which costs less than a transaction of its own.
        # (``_owe`` inlined: this runs once per push of a stream.)
        self._uncovered[(self.push, queue)] = time.monotonic()
        if self._timer is None:
            self._arm()

    def finished(self) -> None:
        """Acks that finished tasks have just committed, without a notification."""
        self._owe((self.fin, ""), at_once=True)

    def _mark_covered(self, key: Key, sent: float) -> None:
        if sent > self._covered.get(key, -1.0):
            self._covered[key] = sent

    def _owe(self, key: Key, at_once: bool) -> None:
        now = time.monotonic()
        self._uncovered[key] = now
        if at_once and now - self._started.get(key, -1e9) >= self.window:
            self._fire()
        elif self._timer is None:
            self._arm()

    def _arm(self) -> None:
        now = time.monotonic()
        # Half a window of slack: in a steady stream of pushes the next one's own
        # notification usually covers these first, and the timer finds nothing to do.
        at = min(self._started.get(k, now) + 1.5 * self.window for k in self._uncovered)
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - now), self._fire)

    def _pending(self) -> list[Key]:
        return [k for k, t in self._uncovered.items() if t >= self._covered.get(k, -1.0)]

    def _fire(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        for key in self._pending():
            if now - self._started.get(key, -1e9) >= self.window:
                self._started[key] = now
                del self._uncovered[key]
                sending = asyncio.ensure_future(self._send(key, now))
                self._sending.add(sending)
                sending.add_done_callback(self._sending.discard)
        for key in list(self._uncovered):
            if self._uncovered[key] < self._covered.get(key, -1.0):
                del self._uncovered[key]
        if self._uncovered:
            self._arm()

    async def _send(self, key: Key, sent: float) -> None:
        # One simple query, so SET LOCAL applies to this transaction alone.
        text = sql.SQL("SET LOCAL synchronous_commit = off; SELECT pg_notify({}, {})").format(
            sql.Literal(key[0]), sql.Literal(key[1])
        )

        async def call(conn: Conn, _: bool) -> None:
            await conn.execute(text)

        try:
            await self.connection.run(call, "notifying idle workers")
        except Exception as exc:
            # Workers look again shortly after the last notification they got,
            # and waiters read statuses now and then.
            log.warning("could not send notification %r: %s", key, exc)
            return
        self._mark_covered(key, sent)

    async def flush(self) -> None:
        """Send what is still owed now (the store is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending()
        self._uncovered.clear()
        now = time.monotonic()
        await asyncio.gather(
            *self._sending, *(self._send(k, now) for k in pending), return_exceptions=True
        )

"""Debounced push notifications: one ``pg_notify`` per queue per window, none owed left unsent.

A single push that notifies costs its statement a CTE and the commit a write to the
server's notification queue (measured: about a fifth of a one-by-one push). Idle
workers need one notification after a task they cannot see yet, not one per task:

- a push notifies in its own statement when this process sent none for its queue
  in the last ``window`` seconds (the leading edge: a lone push wakes at once);
- a push inside the window goes as a plain INSERT; once it has committed, a
  trailing ``pg_notify`` is scheduled for the window's end unless a notification
  that started after that commit already covers it. Sent after the commit, it
  wakes every idle worker to a claim that sees the row.

So a task waits at most about 1.5 windows for its wake-up. If the process dies
between a plain INSERT and its trailing notification, workers still look again
shortly after the last notification they received (``Listener.since_push``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor_postgres.connection import Conn, Connection

__all__ = ["Notices"]

log = logging.getLogger("conveyor.postgres")


class Notices:
    """Per queue: when this process last started a notification, and which pushes still need one."""

    def __init__(self, connection: Connection, channel: str, window: float) -> None:
        self.connection = connection
        self.channel = channel
        self.window = window
        self._started: dict[str, float] = {}
        """Queue -> when the latest notification (in a push or trailing) was sent."""
        self._covered: dict[str, float] = {}
        """Queue -> send time of the latest notification known committed: it covers
        every push committed before then."""
        self._uncovered: dict[str, float] = {}
        """Queue -> commit time of the latest push that went without a notification."""
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Future[Any]] = set()

    def due(self, queue: str) -> float | None:
        """The send time to record if a push to ``queue`` starting now must notify, else None."""
        now = time.monotonic()
        last = self._started.get(queue)
        if last is None or now - last >= self.window:
            self._started[queue] = now
            return now
        return None

    def notified(self, queue: str, sent: float) -> None:
        """A notification for ``queue`` sent at ``sent`` has committed."""
        if sent > self._covered.get(queue, -1.0):
            self._covered[queue] = sent

    def skipped(self, queue: str) -> None:
        """A push to ``queue`` without a notification has just committed."""
        self._uncovered[queue] = time.monotonic()
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        now = time.monotonic()
        # Half a window of slack: in a steady stream the next push's own
        # notification usually covers these first, and the timer finds nothing to do.
        at = min(self._started.get(q, now) + 1.5 * self.window for q in self._uncovered)
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - now), self._fire)

    def _pending(self) -> list[str]:
        return [q for q, t in self._uncovered.items() if t >= self._covered.get(q, -1.0)]

    def _fire(self) -> None:
        self._timer = None
        now = time.monotonic()
        for queue in self._pending():
            if now - self._started.get(queue, -1e9) >= self.window:
                self._started[queue] = now
                del self._uncovered[queue]
                sending = asyncio.ensure_future(self._send(queue, now))
                self._sending.add(sending)
                sending.add_done_callback(self._sending.discard)
        for queue in list(self._uncovered):
            if self._uncovered[queue] < self._covered.get(queue, -1.0):
                del self._uncovered[queue]
        if self._uncovered:
            self._arm()

    async def _send(self, queue: str, sent: float) -> None:
        async def call(conn: Conn, _: bool) -> None:
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, queue))

        try:
            await self.connection.run(call, "notifying idle workers")
        except Exception as exc:
            # Workers still look again shortly after the last notification they got.
            log.warning("could not notify workers of queue %r: %s", queue, exc)
            return
        self.notified(queue, sent)

    async def flush(self) -> None:
        """Send what is still owed now (the store is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending()
        self._uncovered.clear()
        now = time.monotonic()
        await asyncio.gather(
            *self._sending, *(self._send(q, now) for q in pending), return_exceptions=True
        )

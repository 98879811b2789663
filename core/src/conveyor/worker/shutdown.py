"""Stopping a worker: the stop request, signals, and the grace period for tasks in flight."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Shutdown", "Interrupted", "SIGNALS"]

logger = logging.getLogger("conveyor.worker")

SIGNALS = (signal.SIGINT, signal.SIGTERM)

HELD = 0.2
"""Seconds the event loop may leave a signal unanswered before it counts as held."""


class Interrupted(BaseException):
    """Raised by a second SIGINT or SIGTERM into code that holds the event loop (a handler
    or a backend that never awaits), so that the worker's forced stop can run.

    Not an ``Exception``: handler code that catches everything does not swallow it.
    """


class Shutdown:
    """One run's stop state.

    The first ``request()`` (``Worker.stop()``, SIGINT or SIGTERM) stops the
    lanes from taking tasks; ``drain`` then gives tasks in flight
    ``grace_period`` seconds before cancelling them (each cancelled task is
    released so it runs again). A second signal skips the wait.
    """

    def __init__(self, worker: str, grace_period: float) -> None:
        self.worker = worker
        self.grace_period = grace_period
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.stopping = False
        self.in_flight = 0
        self._previous: dict[int, Any] = {}
        self._received = 0  # signals seen by the Python-level handler
        self._handled = 0  # signals the event loop has acted on
        self._unanswered_since = 0.0  # when the oldest signal the loop has not acted on came
        self._interrupted = False

    def request(self) -> None:
        """Stop taking tasks."""
        self.stopping = True
        self.requested.set()

    def force(self) -> None:
        """Stop now: cancel and release what is in flight without waiting."""
        self.request()
        self.forced.set()

    def on_signal(self, signum: int) -> None:
        """A signal, as the event loop delivers it: stop, or on the second, stop now."""
        self._handled += 1
        name = signal.Signals(signum).name
        if self.requested.is_set():
            logger.warning("worker %s: %s again, cancelling tasks in flight now", self.worker, name)
            self.force()
        else:
            logger.warning(
                "worker %s: %s, finishing %d task(s) in flight (up to %g s); %s again to stop now",
                self.worker, name, self.in_flight, self.grace_period, name,
            )  # fmt: skip
            self.request()

    def install_signals(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Handle SIGINT and SIGTERM on ``loop``; only possible in the main thread.

        The loop delivers each signal to ``on_signal``. Beside it sits a
        Python-level handler that counts: Python runs it between two bytecodes
        even while something holds the loop (a handler or a backend that never
        awaits). When a second signal comes and the loop has left the first
        unanswered for ``HELD`` seconds, it raises ``Interrupted`` where the
        loop is stuck, which frees the loop to run the forced stop. A further
        signal after a forced stop began, or after ``Interrupted`` did not free
        the loop, ends the process the way the signal would by default.
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        self._previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
        try:
            for signum in SIGNALS:
                loop.add_signal_handler(signum, self.on_signal, signum)
                # The loop's handler keeps its wake-up file descriptor; this one replaces the
                # no-op Python-level handler asyncio installs beside it.
                signal.signal(signum, self._count)
        except (NotImplementedError, RuntimeError, ValueError):
            self.remove_signals(loop)
            return False
        return True

    def _count(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self._received <= self._handled:
            self._unanswered_since = now
        self._received += 1
        held = self._received - self._handled >= 2 and now - self._unanswered_since >= HELD
        if self._handled >= 2 or (held and self._interrupted):
            # A forced stop is under way, or Interrupted was swallowed: end it the hard way.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        elif held:
            # Safe to set from here (a plain flag); lanes check it before they run anything,
            # so the task handed back below is not taken again before the loop stops them.
            self.stopping = True
            self._interrupted = True
            raise Interrupted(f"{signal.Signals(signum).name} again, and the event loop is held")

    def remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put back the handlers that were there before (asyncio.run's Ctrl-C, say)."""
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
            previous = self._previous.get(signum)
            if previous is not None:
                signal.signal(signum, previous)

    async def drain(
        self, lanes: Sequence[asyncio.Task[None]], is_idle: Callable[[int], bool]
    ) -> None:
        """Let busy lanes finish within the grace period; cancel the rest."""
        self.stopping = True
        pending = set()
        for index, lane in enumerate(lanes):
            if is_idle(index):
                lane.cancel()  # waiting to poll or polling: holds no task
            else:
                pending.add(lane)
        if pending and not self.forced.is_set():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.grace_period
            forced = loop.create_task(self.forced.wait())
            try:
                while pending and not self.forced.is_set():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    done, _ = await asyncio.wait(
                        pending | {forced}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                    pending -= done
            finally:
                forced.cancel()
        if pending:
            logger.warning(
                "worker %s: cancelling %d task(s) still running; they will run again",
                self.worker, len(pending),
            )  # fmt: skip
        for lane in pending:
            lane.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)

"""The poll stream the lanes share, and what happens between its tasks.

After an empty poll or a poll error the lane holding the turn comes here: it
waits as fits (the poll strategy's tick, the worker's own pace for a backend
that answers ``None`` at once, a backoff after an error), ends a burst, or
gives up on a backend that keeps failing. Every path awaits something, so no
backend can hold the event loop between two polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from conveyor.backoff import exponential, full_jitter
from conveyor.errors import BackendUnavailable
from conveyor.events import Idle
from conveyor.middleware.retry import describe
from conveyor.poll_strategy import PollContext
from conveyor.task import Task
from conveyor.worker.horizon import Horizon
from conveyor.worker.shutdown import Shutdown
from conveyor.worker.state import Live, Settings

__all__ = ["Poller", "QUICK", "PACE_FIRST", "PACE_MAX"]

logger = logging.getLogger("conveyor.worker")

QUICK = 0.001
"""Seconds: an empty poll that came back sooner did not wait for work."""

PACE_FIRST = 0.001
PACE_MAX = 1.0
"""The worker's own pace for empty polls in a row that did not wait: from ``PACE_FIRST``
seconds, doubling, up to ``PACE_MAX``."""


class Poller:
    """One run's poll stream; its methods are called by the lane holding the turn."""

    def __init__(
        self,
        settings: Settings,
        live: Live,
        backend_name: str,
        hooks: Any,
        shutdown: Shutdown,
        burst: bool,
        horizon: Horizon | None,
    ) -> None:
        self.settings = settings
        self.live = live
        self.backend_name = backend_name
        self.hooks = hooks
        self.shutdown = shutdown
        self.burst = burst
        self.horizon = horizon
        self.iterator: AsyncIterator[Task[bytes] | None] = hooks.poll(settings.info)
        self.context = PollContext(settings.info)
        self.ticks: AsyncIterator[None] | None = None
        if settings.poll_strategy is not None:
            self.ticks = settings.poll_strategy.ticks(self.context)
        self.settled: asyncio.Future[None] | None = None
        """Set by a lane when it finishes a task, while a burst waits for that."""
        self.failure: BaseException | None = None
        """Why the run gave up on the backend; ``Worker.run`` raises it."""
        self.waiting: asyncio.Task[Any] | None = None
        self.interrupted = False

    async def after(self, first: BaseException | None) -> Task[bytes] | None:
        """After an empty poll (``first is None``) or a poll error: wait as fits, poll again.

        Returns the next claimed task, or ``None`` when the lane should look at
        the worker again (it is stopping or paused).
        """
        settings, live, shutdown = self.settings, self.live, self.shutdown
        loop = asyncio.get_running_loop()
        errors = 0
        failing_since = 0.0
        quick = 1  # the empty poll that brought the lane here is taken as one that did not wait
        pending = first
        while not shutdown.stopping:
            if isinstance(pending, StopAsyncIteration):
                # The stream ended: nothing more will come. A burst is over; a run waits for stop.
                if self.burst:
                    await self._await_settled()
                    shutdown.request()
                else:
                    await shutdown.requested.wait()
                return None
            if pending is not None:
                errors += 1
                now = loop.time()
                if errors == 1:
                    failing_since = now
                limit = settings.give_up_after
                if self.burst or (limit is not None and now - failing_since >= limit):
                    self._give_up(pending, errors, now - failing_since)
                    return None
                delay = full_jitter(errors, settings.error_backoff, settings.error_backoff_max)
                live.backend_error(f"poll failed (retrying in {delay:.2f} s)", pending)
                await asyncio.sleep(delay)
                await self.restart()
            else:
                if errors:
                    _recovered(live.name, errors)
                    errors = 0
                if live.listeners:
                    live.emit(Idle(live.name))
                self.context.empty()
                if self.burst:
                    if shutdown.in_flight:
                        # Something may still retry or finish: wait for it rather than poll idly.
                        await self._settle_one()
                    else:
                        try:
                            waited = self.horizon is not None and await self._wait_for_due()
                        except Exception as exc:  # the listing failed: as a poll error
                            pending = exc
                            continue
                        if not waited:
                            shutdown.request()
                            return None
                    # A fresh stream answers at once (its first None is immediate), where
                    # the old one would first wait for a push that a burst does not expect.
                    await self.restart()
                elif self.ticks is not None:
                    try:
                        await self.ticks.__anext__()
                    except StopAsyncIteration:
                        self.ticks = None  # the strategy ended: leave the pace to the backend
                elif quick >= 2:
                    # The backend answered None again without waiting: pace it ourselves.
                    await asyncio.sleep(exponential(quick - 1, PACE_FIRST, PACE_MAX))
                else:
                    await asyncio.sleep(0)  # let stop(), signals and other tasks in
            if shutdown.stopping or live.paused:
                return None
            started = loop.time()
            try:
                item = await self._poll_waiting()
            except Exception as exc:
                pending = exc
                continue
            if item is not None:
                if errors:
                    _recovered(live.name, errors)
                self.context.found += 1
                return item
            if self.interrupted or live.paused:
                self.interrupted = False
                return None
            quick = quick + 1 if loop.time() - started < QUICK else 0
            pending = None
        return None

    async def _poll_waiting(self) -> Task[bytes] | None:
        """The next item of a poll that is likely to wait for work; ``interrupt()`` ends it."""
        task = self.waiting = asyncio.current_task()
        try:
            return await self.iterator.__anext__()
        except asyncio.CancelledError:
            if not self.interrupted or self.shutdown.stopping or task is None:
                raise
            task.uncancel()
            await self.restart()  # the cancelled stream is finished
            return None
        finally:
            self.waiting = None

    def interrupt(self) -> None:
        """A pause came: cancel a poll that waits for work, so it claims nothing for nobody."""
        waiting = self.waiting
        if waiting is not None and not self.interrupted:
            self.interrupted = True
            waiting.cancel()

    def _give_up(self, error: BaseException, errors: int, seconds: float) -> None:
        """Stop the run; ``Worker.run`` raises ``BackendUnavailable`` (the error is its cause)."""
        name = self.live.name
        if self.burst:
            # The caller hears it as the exception; a log line would only repeat it.
            logger.debug("worker %s: poll failed, ending the burst", name, exc_info=error)
        else:
            logger.error(
                "worker %s: poll failed %d times in %.1f s, stopping: %s",
                name, errors, seconds, describe(error),
            )  # fmt: skip
        if isinstance(error, BackendUnavailable):
            self.failure = error
        else:
            failure = BackendUnavailable(
                f"backend {self.backend_name!r} failed to poll: {describe(error)}"
            )
            failure.__cause__ = error
            self.failure = failure
        self.shutdown.request()

    async def _wait_for_due(self) -> bool:
        """A drain with nothing ready or in flight: wait until the next task due before the
        horizon; ``False`` when there is none."""
        assert self.horizon is not None
        when = await self.horizon.next_due()
        return when is not None and await self.horizon.wait_for(when)

    async def restart(self) -> None:
        """Open a fresh poll stream, closing the old one."""
        old, self.iterator = self.iterator, self.hooks.poll(self.settings.info)
        closer = getattr(old, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                logger.debug("closing a poll iterator failed", exc_info=True)

    async def close(self) -> None:
        """Close the poll stream and the strategy's ticks."""
        for iterator in (self.iterator, self.ticks):
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception as exc:
                    logger.debug("closing an iterator of worker %s: %r", self.live.name, exc)

    async def _settle_one(self) -> None:
        self.settled = asyncio.get_running_loop().create_future()
        await self.settled

    async def _await_settled(self) -> None:
        while self.shutdown.in_flight:
            await self._settle_one()


def _recovered(worker: str, errors: int) -> None:
    logger.info("worker %s: poll works again after %d failure(s)", worker, errors)

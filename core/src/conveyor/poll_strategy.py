"""Poll strategies: when to ask a store that cannot wake a worker itself for more tasks.

A strategy turns a ``PollContext`` into an async stream of ticks; each tick
means "poll now". ``Interval`` ticks at a fixed pace, ``Backoff`` slows down
after empty polls and speeds up after a hit, ``Stream`` ticks whenever an
async iterable of wake-ups yields (a LISTEN/NOTIFY channel, a file watcher),
and ``Race`` ticks when the first of several strategies does. Backend authors
drive a fetch function with ``poll_with``; a ``Worker`` given
``poll_strategy=`` waits for a tick after each empty poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Protocol

import attrs

from conveyor.backoff import exponential
from conveyor.context import WorkerInfo
from conveyor.task import Task

__all__ = [
    "PollContext",
    "PollStrategy",
    "Interval",
    "Backoff",
    "Stream",
    "Trigger",
    "Race",
    "poll_with",
]


class PollContext:
    """What a strategy may read: the worker, and how the last polls went.

    ``found`` counts tasks since the last empty poll; ``empty_streak`` counts
    empty polls in a row (0 after a hit).
    """

    __slots__ = ("empty_streak", "found", "worker")

    def __init__(self, worker: WorkerInfo | None = None) -> None:
        self.worker = worker
        self.found = 0
        self.empty_streak = 0

    def empty(self) -> None:
        """Record an empty poll (called after each one)."""
        self.empty_streak = 1 if self.found else self.empty_streak + 1
        self.found = 0


class PollStrategy(Protocol):
    """Makes the tick stream for one poller."""

    def ticks(self, context: PollContext) -> AsyncIterator[None]:
        """An endless async iterator; each item means "poll now"."""
        ...


@attrs.frozen
class Interval:
    """Tick every ``seconds``."""

    seconds: float

    def __attrs_post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"Interval needs more than 0 seconds, not {self.seconds!r}")

    async def ticks(self, context: PollContext) -> AsyncIterator[None]:
        """Sleep ``seconds``, tick, forever."""
        while True:
            await asyncio.sleep(self.seconds)
            yield None


@attrs.frozen
class Backoff:
    """Adaptive: wait ``initial`` after a hit, ``factor`` times longer after each
    further empty poll, up to ``maximum``; every wait is varied by ±``jitter``
    (a fraction) so many workers do not poll in step."""

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.1

    def __attrs_post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.factor >= 1 and 0 <= self.jitter < 1):
            raise ValueError(
                "Backoff needs 0 < initial <= maximum, factor >= 1 and 0 <= jitter < 1;"
                f" got {self!r}"
            )

    def delay(self, empty_streak: int) -> float:
        """The wait after ``empty_streak`` empty polls in a row."""
        base = exponential(max(1, empty_streak), self.initial, self.maximum, self.factor)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    async def ticks(self, context: PollContext) -> AsyncIterator[None]:
        """Sleep ``delay(context.empty_streak)``, tick, forever."""
        while True:
            await asyncio.sleep(self.delay(context.empty_streak))
            yield None


@attrs.frozen
class Stream:
    """Tick whenever ``source()`` (an async iterable of wake-ups) yields; ends with it."""

    source: Callable[[], AsyncIterable[object]]

    async def ticks(self, context: PollContext) -> AsyncIterator[None]:
        """One tick per item of a fresh ``source()``."""
        async for _ in self.source():
            yield None


class Trigger:
    """An in-process wake-up: ``notify()`` makes the next (or a waiting) tick come.

    Notifications while nobody waits collapse into one tick.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake the poller."""
        self._event.set()

    async def ticks(self, context: PollContext) -> AsyncIterator[None]:
        """Tick after each ``notify()``."""
        while True:
            await self._event.wait()
            self._event.clear()
            yield None


class Race:
    """Tick when the first of ``strategies`` ticks (e.g. ``Race(Trigger(), Interval(5))``)."""

    def __init__(self, *strategies: PollStrategy) -> None:
        if not strategies:
            raise ValueError("Race needs at least one strategy")
        self.strategies = strategies

    async def ticks(self, context: PollContext) -> AsyncIterator[None]:
        """Merge the tick streams (ticks at the same moment make one); end when all have ended."""
        streams = [s.ticks(context) for s in self.strategies]
        waiting: dict[asyncio.Future[None], AsyncIterator[None]] = {
            asyncio.ensure_future(anext(stream)): stream for stream in streams
        }
        try:
            while waiting:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                ticked = False
                for future in done:
                    stream = waiting.pop(future)
                    try:
                        future.result()
                    except StopAsyncIteration:
                        continue
                    ticked = True
                    waiting[asyncio.ensure_future(anext(stream))] = stream
                if ticked:
                    yield None
        finally:
            for future in waiting:
                future.cancel()
            for stream in streams:
                closer = getattr(stream, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()


async def poll_with(
    fetch: Callable[[], Awaitable[Task[bytes] | None]],
    strategy: PollStrategy,
    worker: WorkerInfo | None = None,
) -> AsyncIterator[Task[bytes] | None]:
    """A ``poll`` hook body for a store that can only be asked: yield what ``fetch()``
    claims; when it finds nothing, yield ``None`` once, then fetch again on each tick.
    """
    context = PollContext(worker)
    ticks = strategy.ticks(context)
    try:
        while True:
            task = await fetch()
            if task is not None:
                context.found += 1
                yield task
                continue
            yield None
            context.empty()
            try:
                await anext(ticks)
            except StopAsyncIteration:
                return
    finally:
        closer = getattr(ticks, "aclose", None)
        if closer is not None:
            await closer()

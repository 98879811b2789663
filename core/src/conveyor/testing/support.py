"""Helpers the conformance suite's tests share: claiming, time, capability gates."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.clock import ManualClock
from conveyor.context import WorkerInfo
from conveyor.outcome import Done
from conveyor.task import Task
from conveyor.task_id import TaskId

__all__ = [
    "HANG_GUARD",
    "Stream",
    "Suite",
    "claim",
    "claim_all",
    "lacking_call",
    "worker",
]

HANG_GUARD = 20.0
"""Seconds any single backend call may take before the suite calls it hung (not a timing test)."""

_workers = itertools.count(1)


def worker(backend: Backend, queue: str | None = None) -> WorkerInfo:
    """A worker identity unique within this test run."""
    return WorkerInfo(name=f"conformance-worker-{next(_workers)}", queue=queue or backend.queue)


async def guard(awaitable: Awaitable[Any], what: str) -> Any:
    """Await ``awaitable``, failing with a readable message if it hangs."""
    try:
        return await asyncio.wait_for(awaitable, HANG_GUARD)
    except TimeoutError:
        raise AssertionError(f"{what} did not return within {HANG_GUARD:.0f} s (hung?)") from None


async def claim(backend: Backend, who: WorkerInfo | None = None) -> Task[bytes] | None:
    """Open a poll stream for ``who``, take its first item (a claimed task or None), close it.

    The first item of a fresh stream must come at once: a task if one is ready,
    else ``None``.
    """
    stream: AsyncIterator[Task[bytes] | None] = backend.poll(who or worker(backend))
    try:
        item: Task[bytes] | None = await guard(anext(stream), "poll's first item")
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    return item


async def claim_all(backend: Backend, who: WorkerInfo | None = None) -> list[Task[bytes]]:
    """Claim until the backend reports nothing ready; the tasks in delivery order."""
    who = who or worker(backend)
    got: list[Task[bytes]] = []
    while (task := await claim(backend, who)) is not None:
        got.append(task)
        if len(got) > 10_000:
            raise AssertionError("poll never reported idle after 10000 claims")
    return got


class Stream:
    """One poll stream kept open, as a worker keeps it, for one worker identity."""

    def __init__(self, backend: Backend, who: WorkerInfo | None = None) -> None:
        self.backend = backend
        self.who = who or worker(backend)
        self._items: AsyncIterator[Task[bytes] | None] = backend.poll(self.who)

    async def next(self) -> Task[bytes] | None:
        """The stream's next item (a claimed task or None)."""
        item: Task[bytes] | None = await guard(anext(self._items), "poll's next item")
        return item

    def raw_next(self) -> Awaitable[Task[bytes] | None]:
        """The next item, unguarded: for a test that cancels it (``guard``'s timeout would
        add a task of its own, which may swallow what a cancelled claim returned)."""
        return anext(self._items)

    async def task(self, nones: int = 3) -> Task[bytes] | None:
        """The next task, allowing up to ``nones`` ``None`` items before it (a wait in progress)."""
        for _ in range(nones + 1):
            item = await self.next()
            if item is not None:
                return item
        return None

    async def aclose(self) -> None:
        """Close the stream (what the worker does on stop)."""
        close = getattr(self._items, "aclose", None)
        if close is not None:
            await guard(close(), "closing a poll stream")

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Suite:
    """What a suite test gets: the backend under test and the clock it was given (or None)."""

    def __init__(self, backend: Backend, clock: ManualClock | None) -> None:
        self.backend = backend
        self.clock = clock

    def now(self) -> datetime:
        """The backend's now (its manual clock, else the real time), floored to the millisecond.

        Flooring keeps a ``run_at`` of "now" from landing a rounding step in the future.
        """
        seconds = self.clock.time() if self.clock is not None else time.time()
        return datetime.fromtimestamp(math.floor(seconds * 1000) / 1000, UTC)

    def later(self, seconds: float) -> datetime:
        """``seconds`` after the backend's now."""
        return self.now() + timedelta(seconds=seconds)

    def supports(self, *caps: Capability) -> bool:
        """Whether the backend has every one of ``caps``."""
        return all(self.backend.supports(c) for c in caps)


def _dummy_task(backend: Backend) -> Task[bytes]:
    return Task(TaskId.new(), b"null", backend.queue)


async def _drain(iterator: AsyncIterator[Any]) -> None:
    async for _ in iterator:
        pass


def lacking_call(backend: Backend, capability: Capability) -> Callable[[], Any]:
    """A zero-argument call that uses ``capability`` through the facade (or its hook).

    Returns whatever the call returns (maybe an awaitable); used to prove that a
    capability a backend lacks raises ``UnsupportedCapability``.
    """
    b, h = backend, backend.hooks
    calls: dict[Capability, Callable[[], Any]] = {
        Capability.ACK: lambda: h.ack(_dummy_task(b), Done()),
        Capability.PUSH: lambda: b.push(1),
        Capability.PUSH_WEAK: lambda: b.push_weak(1),
        Capability.FETCH_BY_ID: lambda: b.fetch_by_id(TaskId.new()),
        Capability.UPDATE: lambda: b.update(Task(TaskId.new(), 1, b.queue)),
        Capability.RESCHEDULE: lambda: h.reschedule(_dummy_task(b), datetime.now(UTC)),
        Capability.VACUUM: lambda: b.vacuum(),
        Capability.RESUME_BY_ID: lambda: b.resume_by_id(TaskId.new()),
        Capability.RESUME_ABANDONED: lambda: b.resume_abandoned(),
        Capability.REGISTER_WORKER: lambda: b.register_worker(worker(b)),
        Capability.LIST_TASKS: lambda: b.list_tasks(),
        Capability.LIST_ALL_TASKS: lambda: b.list_all_tasks(),
        Capability.LIST_QUEUES: lambda: b.list_queues(),
        Capability.LIST_WORKERS: lambda: b.list_workers(),
        Capability.METRICS: lambda: b.metrics(),
        Capability.WAIT_FOR: lambda: _drain(b.wait_for([TaskId.new()], timeout=1)),
        Capability.CHECK_STATUS: lambda: b.check_status([TaskId.new()]),
        Capability.GET_QUEUE: lambda: b.get_queue(),
        Capability.MAKE_SHARED: lambda: b.make_shared("conformance-lacking"),
        Capability.MIGRATE: lambda: b.migrate(apply=False),
    }
    return calls[capability]

"""Poll strategies: interval, adaptive backoff, stream and trigger wake-ups, races."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import conveyor
from conveyor import Backend, Task, TaskId, Worker, WorkerInfo, hookimpl
from conveyor.events import Event, Idle
from conveyor.poll_strategy import (
    Backoff,
    Interval,
    PollContext,
    Race,
    Stream,
    Trigger,
    poll_with,
)


def test_backoff_grows_after_empty_polls_and_resets_after_a_hit() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0)
    context = PollContext()
    delays = []
    for _ in range(6):
        context.empty()
        delays.append(backoff.delay(context.empty_streak))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    context.found += 1
    context.empty()
    assert backoff.delay(context.empty_streak) == pytest.approx(0.1)


def test_backoff_jitter_stays_within_its_band() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.1)
    values = [backoff.delay(1) for _ in range(200)]
    assert all(0.9 <= v <= 1.1 for v in values)
    assert len(set(values)) > 1


def test_bad_strategy_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="Interval"):
        Interval(0)
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(initial=2, maximum=1)
    with pytest.raises(ValueError, match="Race"):
        Race()


async def test_interval_ticks() -> None:
    ticks = Interval(0.001).ticks(PollContext())
    for _ in range(3):
        assert await anext(ticks) is None
    await ticks.aclose()  # type: ignore[attr-defined]


async def test_stream_ticks_once_per_wakeup_and_ends_with_its_source() -> None:
    async def wakeups() -> AsyncIterator[str]:
        for name in ("insert", "update"):
            yield name

    ticks = [t async for t in Stream(wakeups).ticks(PollContext())]
    assert ticks == [None, None]


async def test_race_ticks_on_the_first_strategy_that_does() -> None:
    trigger = Trigger()
    ticks = Race(trigger, Interval(3600)).ticks(PollContext())
    waiting = asyncio.ensure_future(anext(ticks))
    await asyncio.sleep(0)
    assert not waiting.done()
    trigger.notify()
    await asyncio.wait_for(waiting, timeout=5)
    await ticks.aclose()  # type: ignore[attr-defined]


async def test_race_ends_when_all_its_strategies_end() -> None:
    async def once() -> AsyncIterator[int]:
        yield 1

    ticks = [t async for t in Race(Stream(once), Stream(once)).ticks(PollContext())]
    assert ticks in ([None], [None, None])  # ticks that come together may collapse into one


async def test_poll_with_fetches_until_empty_then_waits_for_a_tick() -> None:
    rows = [Task(TaskId.new(), b"1"), Task(TaskId.new(), b"2")]
    fetches = 0

    async def fetch() -> Task[bytes] | None:
        nonlocal fetches
        fetches += 1
        return rows.pop(0) if rows else None

    trigger = Trigger()
    stream = poll_with(fetch, trigger)
    assert (await anext(stream)) is not None
    assert (await anext(stream)) is not None
    assert (await anext(stream)) is None
    assert fetches == 3
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.01)
    assert not waiting.done() and fetches == 3  # no tick, no fetch
    rows.append(Task(TaskId.new(), b"3"))
    trigger.notify()
    task = await asyncio.wait_for(waiting, timeout=5)
    assert task is not None and task.args == b"3"
    await stream.aclose()  # type: ignore[attr-defined]


class AlwaysEmpty:
    """A store that can only be asked, and never has anything: poll answers None at once."""

    def __init__(self) -> None:
        self.polls = 0

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        while True:
            self.polls += 1
            yield None


async def test_a_worker_paces_a_store_that_cannot_wait_with_its_strategy() -> None:
    store = AlwaysEmpty()
    idle = asyncio.Event()
    worker = Worker(
        Backend(store, name="empty"),
        lambda _: None,
        poll_strategy=Backoff(initial=0.02, maximum=0.05),
        handle_signals=False,
        listeners=[lambda e: idle.set() if isinstance(e, Idle) else None],
    )
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    worker.stop()
    await running
    assert idle.is_set()
    # Spinning would poll thousands of times in 0.2 s; the backoff allows a handful.
    assert 1 <= store.polls <= 12


async def test_an_idle_worker_on_memory_waits_for_pushes_instead_of_polling() -> None:
    events: list[Event] = []
    backend = conveyor.open("memory")
    ran = asyncio.Event()

    async def handle(_: Any) -> None:
        ran.set()

    worker = Worker(backend, handle, handle_signals=False, listeners=[events.append])
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    idles = sum(isinstance(e, Idle) for e in events)
    assert idles <= 2  # the first empty poll, then it waits on the store
    await backend.push("wake up")
    await asyncio.wait_for(ran.wait(), timeout=5)
    worker.stop()
    await running

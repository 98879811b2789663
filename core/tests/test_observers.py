"""Cross-cutting plugins wrap every backend's hooks; without them, hooks are called directly."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Generator, Sequence
from typing import Any

import conveyor
from conveyor import Registry, Task, TaskId, hookimpl


class CountPushes:
    def __init__(self) -> None:
        self.pushed = 0

    @hookimpl(wrapper=True)
    def push(self, tasks: Sequence[Task[bytes]]) -> Generator[None, Any, Any]:
        self.pushed += len(tasks)
        return (yield)


class TimeFetches:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    @hookimpl(wrapper=True)
    def fetch_by_id(self, task_id: TaskId) -> Generator[None, Any, Awaitable[Any]]:
        pending = yield

        async def timed() -> Any:
            start = time.perf_counter()
            try:
                return await pending
            finally:
                self.seconds.append(time.perf_counter() - start)

        return timed()


async def test_an_observer_counts_pushes_on_every_backend_opened_after_it() -> None:
    registry = Registry()
    counter = CountPushes()
    registry.register(counter)
    first = registry.open("memory://?queue=a")
    second = registry.open("memory://?queue=b")
    await first.push(1)
    await first.push_many([2, 3])
    await second.push(4)
    assert counter.pushed == 4
    assert "push" not in first.hooks.direct

    registry.unregister(counter)
    third = registry.open("memory://")
    await third.push(5)
    assert counter.pushed == 4
    assert "push" in third.hooks.direct


async def test_an_observer_can_wrap_an_async_hook_and_time_it() -> None:
    registry = Registry()
    timer = TimeFetches()
    registry.register(timer)
    backend = registry.open("memory://")
    task_id = await backend.push({"x": 1})
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.args == {"x": 1}
    assert len(timer.seconds) == 1


def test_without_observers_every_implemented_hook_is_resolved_directly() -> None:
    backend = conveyor.Registry().open("memory://")
    assert backend.hooks.direct >= {"poll", "ack", "push", "fetch_by_id", "heartbeat"}

"""The custom backend through the public API: parts, errors, sync/async, polling, builder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from conveyor_custom import BuildError, CustomBackendBuilder, claim

import conveyor
from conveyor import (
    Capability,
    ConfigError,
    ConveyorError,
    JsonCodec,
    Status,
    Task,
    TaskId,
    TaskResult,
    UnsupportedCapability,
    WorkerInfo,
)

WORKER = WorkerInfo("custom-test", "default")


class ListStore:
    """A toy system a custom backend is put over: a list of tasks, sync functions."""

    def __init__(self) -> None:
        self.tasks: list[Task[bytes]] = []
        self.threads: set[str] = set()
        self.fetches = 0

    def push(self, tasks: Sequence[Task[bytes]]) -> list[TaskId]:
        self.threads.add(threading.current_thread().name)
        self.tasks.extend(tasks)
        return [t.id for t in tasks]

    def fetch(self, worker: WorkerInfo) -> Task[bytes] | None:
        self.fetches += 1
        for index, task in enumerate(self.tasks):
            if task.status is Status.PENDING:
                self.tasks[index] = claimed = claim(task, worker)
                return claimed
        return None


async def test_capabilities_are_exactly_the_parts_given() -> None:
    store = ListStore()
    async with conveyor.open("custom", fetch=store.fetch) as bare:
        assert bare.capabilities == frozenset()
        with pytest.raises(UnsupportedCapability, match="'push'"):
            await bare.push(1)
    async with conveyor.open("custom", fetch=store.fetch, push=store.push) as sink:
        assert sink.capabilities == {Capability.PUSH}


async def test_sync_parts_run_on_a_thread_of_their_own_and_tasks_flow() -> None:
    store = ListStore()
    async with conveyor.open("custom", fetch=store.fetch, push=store.push) as backend:
        ids = [await backend.push({"n": n}) for n in range(3)]
        stream = backend.poll(WORKER)
        got = [await anext(stream) for _ in range(3)]
        assert [t.id for t in got if t is not None] == ids
        assert [backend.codec.decode(t.args) for t in got if t is not None] == [
            {"n": 0},
            {"n": 1},
            {"n": 2},
        ]
        assert await anext(stream) is None
        await stream.aclose()  # type: ignore[attr-defined]
    assert store.threads and threading.current_thread().name not in store.threads


async def test_inline_sync_parts_run_on_the_event_loop() -> None:
    store = ListStore()
    async with conveyor.open(
        "custom", fetch=store.fetch, push=store.push, run_sync="inline"
    ) as backend:
        await backend.push(1)
    assert store.threads == {threading.current_thread().name}


async def test_async_parts() -> None:
    store = ListStore()

    async def push(tasks: Sequence[Task[bytes]]) -> list[TaskId]:
        await asyncio.sleep(0)
        return store.push(tasks)

    async def fetch(worker: WorkerInfo) -> Task[bytes] | None:
        return store.fetch(worker)

    async def fetch_by_id(task_id: TaskId) -> Task[bytes] | None:
        return next((t for t in store.tasks if t.id == task_id), None)

    async with conveyor.open("custom", fetch=fetch, push=push, fetch_by_id=fetch_by_id) as backend:
        task_id = await backend.push("hello")
        found = await backend.fetch_by_id(task_id)
        assert found is not None and found.args == "hello"
        stream = backend.poll(WORKER)
        task = await anext(stream)
        assert task is not None and task.status is Status.RUNNING and task.lock_by == WORKER.name
        await stream.aclose()  # type: ignore[attr-defined]


async def test_an_empty_fetch_is_not_repeated_at_once() -> None:
    store = ListStore()
    backend = conveyor.open("custom", fetch=store.fetch, poll_interval=3600)
    stream = backend.poll(WORKER)
    assert await anext(stream) is None  # first idle at once
    assert store.fetches == 1
    waiting = asyncio.ensure_future(anext(stream))
    for _ in range(50):
        await asyncio.sleep(0)
    assert store.fetches == 1 and not waiting.done()  # waits out the interval, no spin
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await backend.aclose()


async def test_fetch_must_return_a_task() -> None:
    backend = conveyor.open("custom", fetch=lambda worker: {"not": "a task"})
    stream = backend.poll(WORKER)
    with pytest.raises(ConveyorError, match=r"custom fetch must return a claimed conveyor\.Task"):
        await anext(stream)
    await backend.aclose()


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({}, r"missing its required part\(s\): fetch\(worker: WorkerInfo\)"),
        ({"push": lambda tasks: []}, "missing its required part"),
        ({"fetch": lambda: None}, r"part 'fetch' takes \(\); expected fetch\(worker"),
        (
            {"fetch": lambda w: None, "push": lambda a, b: []},
            r"part 'push' takes \(a, b\); expected push\(tasks: Sequence\[Task\[bytes\]\]\)",
        ),
        ({"fetch": lambda w: None, "ack": 3}, "part 'ack' must be a function ack"),
        ({"fetch": lambda w: None, "pusj": lambda tasks: []}, "pusj"),
        ({"fetch": lambda w: None, "poll": lambda w: None}, "poll"),
        ({"fetch": lambda w: None, "run_sync": "process"}, "'thread' or 'inline'"),
        ({"fetch": lambda w: None, "poll_interval": 0}, "more than 0"),
    ],
)
def test_mistakes_are_named_at_open(parts: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        conveyor.open("custom", **parts)


def test_sync_only_parts_refuse_async_functions() -> None:
    async def get_queue() -> str:
        return "q"

    with pytest.raises(ConfigError, match="'get_queue' must be a plain function, not async"):
        conveyor.open("custom", fetch=lambda w: None, get_queue=get_queue)


async def test_get_queue_wait_for_and_check_status_parts() -> None:
    store = ListStore()

    async def wait_for(task_ids: Sequence[TaskId], timeout: float | None) -> AsyncIterator[Any]:
        for task_id in task_ids:
            yield TaskResult(task_id, Status.DONE, b'"ok"')

    def check_status(task_ids: Sequence[TaskId]) -> Iterator[TaskResult[bytes]]:
        return iter([TaskResult(task_id, Status.DONE, b"1") for task_id in task_ids])

    async with conveyor.open(
        "custom",
        fetch=store.fetch,
        get_queue=lambda: "mail",
        wait_for=wait_for,
        check_status=check_status,
    ) as backend:
        assert backend.queue == "mail"
        ids = [TaskId.new(), TaskId.new()]
        results = [r async for r in backend.wait_for(ids)]
        assert [(r.task_id, r.result) for r in results] == [(ids[0], "ok"), (ids[1], "ok")]
        assert [r.result for r in await backend.check_status(ids)] == [1, 1]


async def test_make_shared_from_a_mapping_of_parts() -> None:
    stores: dict[str, ListStore] = {}

    def parts(queue: str) -> dict[str, Any]:
        store = stores.setdefault(queue, ListStore())
        return {"fetch": store.fetch, "push": store.push, "get_queue": lambda: queue}

    async with conveyor.open("custom", **parts("a"), make_shared=parts) as first:
        second = first.make_shared("b")
        assert second.queue == "b" and second.supports(Capability.PUSH)
        await second.push("for b")
        assert len(stores["b"].tasks) == 1 and stores["a"].tasks == []
        await second.aclose()


async def test_close_part_is_called_once() -> None:
    closed: list[bool] = []
    backend = conveyor.open("custom", fetch=lambda w: None, close=lambda: closed.append(True))
    await backend.aclose()
    await backend.aclose()
    assert closed == [True]


async def test_builder_reports_what_is_missing_and_builds() -> None:
    store = ListStore()
    builder = CustomBackendBuilder().push(store.push)
    assert builder.missing() == ["fetch"]
    with pytest.raises(BuildError, match=r"\.fetch\(function\)") as caught:
        builder.build()
    assert caught.value.missing == ["fetch"]
    with pytest.raises(ConfigError, match="Did you mean 'push'"):
        builder.part("pushh", store.push)
    with pytest.raises(ConfigError, match="part 'fetch' takes"):
        builder.fetch(lambda: None)

    class Marked(JsonCodec):
        pass

    codec = Marked()
    backend = builder.fetch(store.fetch).codec(codec).poll_interval(0.01, 0.1).build()
    assert isinstance(backend, conveyor.Backend)
    assert backend.codec is codec
    assert builder.capabilities() == backend.capabilities == {Capability.PUSH}
    await backend.push([1, 2])
    assert store.tasks[0].args == codec.encode([1, 2])
    await backend.aclose()


def test_the_registry_knows_custom_capabilities_only_once_opened() -> None:
    info = {i.name: i for i in conveyor.available()}["custom"]
    assert info.distribution == "conveyor-custom"
    assert info.capabilities() == frozenset()


async def test_a_poll_strategy_decides_when_to_fetch_again() -> None:
    from conveyor.poll_strategy import Trigger

    store = ListStore()
    trigger = Trigger()
    backend = CustomBackendBuilder().fetch(store.fetch).poll_strategy(trigger).build()
    stream = backend.poll(WORKER)
    assert await anext(stream) is None
    waiting = asyncio.ensure_future(anext(stream))
    for _ in range(50):
        await asyncio.sleep(0)
    assert store.fetches == 1 and not waiting.done()
    trigger.notify()  # e.g. a LISTEN/NOTIFY wake-up from the system
    assert await waiting is None
    assert store.fetches == 2
    await stream.aclose()  # type: ignore[attr-defined]
    await backend.aclose()


def test_a_poll_strategy_must_be_one() -> None:
    with pytest.raises(ConfigError, match=r"poll_strategy must be a conveyor\.poll_strategy"):
        conveyor.open("custom", fetch=lambda w: None, poll_strategy=5)

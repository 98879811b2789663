"""The pipe backend through the public API, over a real memory backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from conveyor_pipe import PipeSourceError

import conveyor
from conveyor import (
    Backend,
    Capability,
    ConfigError,
    Done,
    Status,
    Task,
    TaskId,
    WorkerInfo,
    hookimpl,
)

WORKER = WorkerInfo("pipe-test", "default")


def memory(**config: Any) -> Backend:
    return conveyor.open("memory", idle_wait=0.02, **config)


async def take(backend: Backend, count: int) -> list[Task[bytes]]:
    """The next ``count`` tasks the backend hands out (skipping idles), each acked done."""
    taken: list[Task[bytes]] = []
    stream = backend.poll(WORKER)
    try:
        async for task in stream:
            if task is None:
                if backend.plugin.exhausted:  # type: ignore[attr-defined]
                    break
                continue
            await backend.hooks.ack(task, Done())
            taken.append(task)
            if len(taken) == count:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return taken


async def run_dry(backend: Backend) -> list[Any]:
    """Every payload until the pipe reports idle with its source done, acked done."""
    payloads: list[Any] = []
    stream = backend.poll(WORKER)
    try:
        async for task in stream:
            if task is None:
                assert backend.plugin.exhausted  # type: ignore[attr-defined]
                break
            payloads.append(backend.codec.decode(task.args))
            await backend.hooks.ack(task, Done())
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return payloads


async def test_capabilities_are_the_inner_backends() -> None:
    inner = memory()
    async with conveyor.open("pipe", source=[], into=inner) as pipe:
        assert pipe.capabilities == inner.capabilities
        assert pipe.supports(Capability.EXPOSE)


async def test_every_item_is_delivered_in_order_then_idle() -> None:
    async with conveyor.open("pipe", source=range(50), into=memory(), read_ahead=4) as pipe:
        assert await run_dry(pipe) == list(range(50))
        assert pipe.plugin.pushed == 50
        assert pipe.plugin.error is None
        done = await pipe.list_tasks(status=Status.DONE, page_size=100)
        assert len(done) == 50


async def test_back_pressure_holds_while_tasks_are_taken() -> None:
    read: list[int] = []

    def source() -> Iterator[int]:
        for n in range(10_000):
            read.append(n)
            yield n

    async with conveyor.open("pipe", source=source(), into=memory(), read_ahead=8) as pipe:
        taken = 0
        for batch in (1, 10, 40):
            taken += len(await take(pipe, batch))
            assert len(read) <= taken + 8 + 1, (taken, len(read))
        assert taken == 51


async def test_tasks_keep_their_options() -> None:
    items = [
        Task(TaskId.new(), "low", priority=0, max_attempts=2, meta={"n": 1}),
        Task(TaskId.new(), "high", priority=9, max_attempts=3, meta={"n": 2}),
    ]
    async with conveyor.open("pipe", source=items, into=memory()) as pipe:
        assert await run_dry(pipe) == ["high", "low"]
        stored = {t.args: t for t in await pipe.list_tasks()}
        assert stored["high"].priority == 9 and stored["high"].max_attempts == 3
        assert stored["low"].meta == {"n": 1}


async def test_async_source() -> None:
    async def source() -> AsyncIterator[dict[str, int]]:
        for n in range(12):
            yield {"n": n}

    async with conveyor.open("pipe", source=source(), into=memory(), read_ahead=2) as pipe:
        assert await run_dry(pipe) == [{"n": n} for n in range(12)]


async def test_source_error_is_reported_with_the_count_and_serving_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def source() -> Iterator[int]:
        yield from range(7)
        raise RuntimeError("feed broke")

    inner = memory()
    async with conveyor.open("pipe", source=source(), into=inner, read_ahead=3) as pipe:
        with caplog.at_level(logging.ERROR, logger="conveyor.pipe"):
            assert await run_dry(pipe) == list(range(7))
        error = pipe.plugin.error
        assert isinstance(error, PipeSourceError)
        assert error.pushed == 7
        assert isinstance(error.error, RuntimeError)
        assert "feed broke" in caplog.text and "after 7 item(s)" in caplog.text
        # Keep serving: a push into the pipe (the inner backend) is still handed out.
        await pipe.push("later")
        assert await run_dry(pipe) == ["later"]


async def test_source_error_can_stop_the_worker() -> None:
    def source() -> Iterator[int]:
        yield from range(3)
        raise ValueError("bad row")

    handled: list[int] = []
    pipe = conveyor.open("pipe", source=source(), into=memory(), on_source_error="stop")
    async with pipe:
        await pipe.push(100)  # already in the inner backend before the run
        worker = conveyor.Worker(pipe, handled.append, handle_signals=False)
        await asyncio.wait_for(worker.run(burst=True), 30)
        error = pipe.plugin.error
        assert isinstance(error, PipeSourceError) and error.pushed == 3
        # The worker stopped taking tasks: what it did not run stays pending, none lost.
        pending = await pipe.list_tasks(status=Status.PENDING, page_size=100)
        done = await pipe.list_tasks(status=Status.DONE, page_size=100)
        assert len(pending) + len(done) == 4
        assert sorted(handled) == sorted(t.args for t in done)


async def test_burst_run_returns_once_the_source_is_done_and_drained() -> None:
    read: list[int] = []

    async def source() -> AsyncIterator[int]:
        for n in range(200):
            read.append(n)
            yield n

    handled: list[int] = []

    async def handler(n: int) -> None:
        handled.append(n)

    async with conveyor.open("pipe", source=source(), into=memory(), read_ahead=8) as pipe:
        worker = conveyor.Worker(pipe, handler, concurrency=4, handle_signals=False)
        await asyncio.wait_for(worker.run(burst=True), 60)
        assert sorted(handled) == list(range(200))
        assert pipe.plugin.exhausted and pipe.plugin.error is None
        assert len(await pipe.list_tasks(status=Status.DONE, page_size=100, page=2)) == 100


async def test_the_worker_uses_the_inner_backends_lease_and_clock() -> None:
    clock = conveyor.ManualClock()
    inner = conveyor.open("memory", clock=clock, lease_seconds=6)
    async with conveyor.open("pipe", source=[], into=inner) as pipe:
        worker = conveyor.Worker(pipe, print, handle_signals=False)
        assert worker.clock is clock
        assert worker.heartbeat_interval == 2


async def test_an_item_that_cannot_be_encoded_is_skipped_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = [1, 2, object(), 4]
    async with conveyor.open("pipe", source=source, into=memory()) as pipe:
        with caplog.at_level(logging.ERROR, logger="conveyor.pipe"):
            assert await run_dry(pipe) == [1, 2, 4]
        assert pipe.plugin.rejected == 1
        assert pipe.plugin.error is None
        assert "skipped source item 3" in caplog.text


async def test_pipe_push_goes_to_the_inner_backend() -> None:
    inner = memory()
    async with conveyor.open("pipe", source=[], into=inner) as pipe:
        task_id = await pipe.push({"x": 1})
        found = await inner.fetch_by_id(task_id)
        assert found is not None and found.args == {"x": 1}


async def test_make_shared_is_the_inner_backends() -> None:
    async with conveyor.open("pipe", source=["a", "b"], into=memory()) as pipe:
        other = pipe.make_shared("other")
        await other.push("o")
        assert await run_dry(pipe) == ["a", "b"]
        assert [t.args for t in await other.list_tasks()] == ["o"]
        assert other.queue == "other"


class _PollOnly:
    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        yield None


async def test_an_inner_backend_without_push_is_refused() -> None:
    readonly = Backend(_PollOnly(), name="readonly")
    with pytest.raises(ConfigError, match="'readonly': it does not accept pushes"):
        conveyor.open("pipe", source=[1], into=readonly)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"into": "memory://"}, "pipe needs a source"),
        ({"source": [1]}, "pipe needs a backend to feed"),
        ({"source": "abc", "into": "memory://"}, "character by character"),
        ({"source": 42, "into": "memory://"}, "iterable or async iterable"),
        ({"source": [1], "into": object()}, "opened conveyor.Backend"),
        ({"source": [1], "into": "memory://", "read_ahead": 0}, "at least 1"),
        ({"source": [1], "into": "memory://", "on_source_error": "ignore"}, "'keep' or 'stop'"),
        ({"source": [1], "into": "memory://", "sorce": [1]}, "sorce"),
    ],
)
def test_configuration_mistakes_are_named(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        conveyor.open("pipe", **config)


async def test_into_may_be_a_url_and_closing_closes_the_source() -> None:
    closed: list[bool] = []

    def source() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.append(True)

    pipe = conveyor.open("pipe", source=source(), into="memory://?queue=jobs", read_ahead=2)
    assert pipe.queue == "jobs"
    assert len(await take(pipe, 1)) == 1
    await pipe.aclose()
    assert closed == [True]
    assert pipe.plugin.exhausted


def test_the_registry_knows_pipe_capabilities_only_once_opened() -> None:
    info = {i.name: i for i in conveyor.available()}["pipe"]
    assert info.distribution == "conveyor-pipe"
    assert info.capabilities() == frozenset()


async def test_over_json_nothing_pushed_is_lost(tmp_path: Any) -> None:
    if "json" not in conveyor.registry.names():
        pytest.skip("conveyor-json is not installed")
    path = str(tmp_path / "tasks.json")
    source = iter(range(100))
    pipe = conveyor.open("pipe", source=source, into=f"json://{path}", read_ahead=10)
    taken = await take(pipe, 5)
    await pipe.aclose()  # a push under way when closing completes: read items are not dropped
    pushed = pipe.plugin.pushed
    assert len(taken) == 5 and 5 <= pushed <= 5 + 10 + 1
    async with conveyor.open(f"json://{path}") as store:
        stored = await store.list_tasks(page_size=100)
        assert len(stored) == pushed
        assert sorted(t.args for t in stored) == list(range(pushed))
    assert next(source) == pushed  # nothing read from the source beyond what was pushed

"""The worker on the memory backend: the apalis behaviours, failures that stay per task."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from datetime import timedelta
from typing import Any

import attrs
import pytest

import conveyor
from conveyor import Abort, Backend, ManualClock, RetryAfter, Status, TaskContext, Worker
from conveyor.events import Error, Event, Idle, Start, Stop, Success
from conveyor.middleware import Timeout

FAR = 3600.0  # seconds: far enough to pass any retry backoff


@attrs.frozen
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Mail:
    to: str
    subject: str


async def test_push_and_consume_stores_results(backend: Backend) -> None:
    ids = [await backend.push(n) for n in (1, 2, 3)]

    async def double(n: int) -> int:
        return n * 2

    await Worker(backend, double).run(burst=True)
    for task_id, n in zip(ids, (1, 2, 3), strict=True):
        task = await backend.fetch_by_id(task_id)
        assert task is not None
        assert (task.status, task.result, task.attempt) == (Status.DONE, n * 2, 1)


async def test_failing_task_is_retried_until_max_attempts_then_killed(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("x", max_attempts=3)
    calls: list[int] = []

    def fail(_: str, ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError(f"attempt {ctx.attempt} failed")

    worker = Worker(backend, fail)
    for attempt in (1, 2, 3):
        await worker.run(burst=True)
        task = await backend.fetch_by_id(task_id)
        assert task is not None
        assert task.attempt == attempt
        assert task.last_error == f"ValueError: attempt {attempt} failed"
        expected = Status.KILLED if attempt == 3 else Status.FAILED
        assert task.status is expected
        clock.advance(FAR)
    await worker.run(burst=True)
    assert calls == [1, 2, 3]


async def test_retry_waits_for_its_backoff(backend: Backend, clock: ManualClock) -> None:
    task_id = await backend.push("x")
    calls = 0

    async def fail(_: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("no")

    worker = Worker(
        backend, fail, middleware=[conveyor.middleware.RetryPolicy(base=10, max_delay=10)]
    )
    await worker.run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.FAILED
    assert clock.now() <= task.run_at <= clock.now() + timedelta(seconds=10)
    clock.set(task.run_at.timestamp() - 0.001)
    await worker.run(burst=True)
    assert calls == 1  # not before its run_at
    clock.advance(0.002)
    await worker.run(burst=True)
    assert calls == 2


async def test_abort_kills_without_retry(backend: Backend, clock: ManualClock) -> None:
    task_id = await backend.push("x", max_attempts=5)

    async def give_up(_: str) -> None:
        raise Abort("the account is closed")

    worker = Worker(backend, give_up)
    await worker.run(burst=True)
    clock.advance(FAR)
    await worker.run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None
    assert (task.status, task.attempt) == (Status.KILLED, 1)
    assert task.last_error == "Abort: the account is closed"


async def test_retry_after_runs_again_after_that_delay(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("x")
    attempts: list[int] = []

    async def later(_: str, ctx: TaskContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RetryAfter(30, "rate limited")
        return "ok"

    worker = Worker(backend, later)
    await worker.run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.FAILED
    assert task.run_at.timestamp() == pytest.approx(clock.time() + 30)
    clock.advance(29)
    await worker.run(burst=True)
    assert attempts == [1]
    clock.set(task.run_at)
    await worker.run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, "ok")
    assert attempts == [1, 2]


async def test_delayed_tasks_never_run_early(backend: Backend, clock: ManualClock) -> None:
    ran: list[str] = []

    async def record(name: str) -> None:
        ran.append(name)

    due = clock.now() + timedelta(seconds=60)
    await backend.push("later", run_at=due)
    await backend.push("now")
    worker = Worker(backend, record)
    await worker.run(burst=True)
    assert ran == ["now"]
    clock.advance(59.9)
    await worker.run(burst=True)
    assert ran == ["now"]
    clock.set(due)
    await worker.run(burst=True)
    assert ran == ["now", "later"]


async def test_priorities_run_highest_first(backend: Backend) -> None:
    order: list[int] = []
    for priority in (1, -1, 10, 5, 1, 10):
        await backend.push(priority, priority=priority)

    async def record(priority: int) -> None:
        order.append(priority)

    await Worker(backend, record, concurrency=1).run(burst=True)
    assert order == [10, 10, 5, 1, 1, -1]


async def test_raising_hanging_and_undecodable_tasks_fail_only_themselves(
    backend: Backend,
) -> None:
    good = [await backend.push({"x": n, "y": n}) for n in range(5)]
    raising = await backend.push({"x": -1, "y": 0})
    hanging = await backend.push({"x": -2, "y": 0})
    undecodable = await backend.push({"x": "not a number", "y": 0})
    hang = asyncio.Event()

    async def handle(point: Point) -> int:
        if point.x == -1:
            raise KeyError("missing")
        if point.x == -2:
            await hang.wait()
        return point.x + point.y

    await Worker(backend, handle, concurrency=4, middleware=[Timeout(0.05)]).run(burst=True)
    for n, task_id in enumerate(good):
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.result) == (Status.DONE, 2 * n)
    failed = await backend.fetch_by_id(raising)
    assert failed is not None and failed.status is Status.FAILED
    assert failed.last_error == "KeyError: 'missing'"
    hung = await backend.fetch_by_id(hanging)
    assert hung is not None and hung.status is Status.FAILED
    assert hung.last_error is not None and "TaskTimeout" in hung.last_error
    bad = await backend.fetch_by_id(undecodable)
    assert bad is not None and (bad.status, bad.attempt) == (Status.KILLED, 1)
    assert bad.last_error is not None
    assert "payload does not fit Point" in bad.last_error and "payload.x" in bad.last_error


async def test_a_result_that_cannot_be_stored_kills_only_that_task(backend: Backend) -> None:
    first = await backend.push("object")
    second = await backend.push("fine")

    async def handle(kind: str) -> Any:
        return object() if kind == "object" else kind

    await Worker(backend, handle).run(burst=True)
    killed = await backend.fetch_by_id(first)
    assert killed is not None and killed.status is Status.KILLED
    assert killed.last_error is not None and "cannot be stored" in killed.last_error
    done = await backend.fetch_by_id(second)
    assert done is not None and (done.status, done.result) == (Status.DONE, "fine")


async def test_sync_handlers_run_in_threads_async_on_the_loop(backend: Backend) -> None:
    threads: dict[str, bool] = {}
    await backend.push("sync")

    def sync_handler(_: str) -> str:
        threads["sync"] = threading.current_thread() is threading.main_thread()
        return "from a thread"

    await Worker(backend, sync_handler).run(burst=True)
    await backend.push("async")

    async def async_handler(_: str) -> str:
        threads["async"] = threading.current_thread() is threading.main_thread()
        return "from the loop"

    await Worker(backend, async_handler).run(burst=True)
    assert threads == {"sync": False, "async": True}
    results = sorted(t.result for t in await backend.list_tasks(status=Status.DONE))
    assert results == ["from a thread", "from the loop"]


async def test_typed_handlers_receive_attrs_and_dataclass_objects(backend: Backend) -> None:
    received: list[Any] = []
    await backend.push(Point(1, 2))

    async def on_point(point: Point) -> None:
        received.append(point)

    await Worker(backend, on_point).run(burst=True)
    await backend.push({"to": "a@example.org", "subject": "hi"})

    def on_mail(mail: Mail) -> None:
        received.append(mail)

    await Worker(backend, on_mail).run(burst=True)
    assert received == [Point(1, 2), Mail("a@example.org", "hi")]


async def test_context_describes_the_task_and_worker(backend: Backend) -> None:
    task_id = await backend.push("x", meta={"tenant": "acme"}, max_attempts=7)
    seen: list[TaskContext] = []

    async def handle(_: str, ctx: TaskContext) -> None:
        seen.append(ctx)

    await Worker(backend, handle, name="w-1").run(burst=True)
    assert seen == [TaskContext(task_id, 1, 7, "default", {"tenant": "acme"}, "w-1")]


async def test_events_reach_listeners_and_a_failing_listener_is_harmless(
    backend: Backend,
) -> None:
    await backend.push("ok")
    await backend.push("bad")
    events: list[Event] = []

    async def handle(kind: str) -> str:
        if kind == "bad":
            raise ValueError("bad")
        return kind

    def broken(_: Event) -> None:
        raise RuntimeError("listener bug")

    worker = Worker(backend, handle, name="w", concurrency=1, listeners=[broken])
    worker.on(events.append)
    await worker.run(burst=True)
    kinds = [type(e) for e in events]
    assert kinds[0] is Start and kinds[-1] is Stop and Idle in kinds
    success = [e for e in events if isinstance(e, Success)]
    assert [e.result for e in success] == ["ok"]
    errors = [e for e in events if isinstance(e, Error)]
    assert len(errors) == 1 and isinstance(errors[0].error, ValueError)
    assert errors[0].task is not None and isinstance(errors[0].outcome, conveyor.Retry)


async def test_pause_takes_no_new_tasks_until_resumed(backend: Backend) -> None:
    done = asyncio.Event()
    ran: list[str] = []

    async def handle(name: str) -> None:
        ran.append(name)
        done.set()

    worker = Worker(backend, handle, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await backend.push("first")
    await done.wait()
    worker.pause()
    assert worker.state is conveyor.WorkerState.PAUSED
    done.clear()
    task_id = await backend.push("while paused")
    for _ in range(20):
        await asyncio.sleep(0.005)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.PENDING and ran == ["first"]
    worker.resume()
    assert worker.state is conveyor.WorkerState.RUNNING
    await done.wait()
    assert ran == ["first", "while paused"]
    worker.stop()
    await running
    assert worker.state is conveyor.WorkerState.STOPPED


async def test_a_stale_ack_is_refused_and_the_slow_worker_lives_on(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("contested")
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(name: str) -> str:
        if name == "contested":
            started.set()
            await release.wait()
            return "from the slow worker"
        return name

    # One lane: busy with the contested task, the slow worker cannot claim it back itself.
    slow_worker = Worker(
        backend, slow, name="slow", concurrency=1, heartbeat_interval=FAR, handle_signals=False
    )
    running = asyncio.create_task(slow_worker.run())
    await started.wait()
    clock.advance(31)  # past the 30 s lease, and no heartbeat came
    assert await backend.resume_abandoned() == 1

    async def fast(_: str) -> str:
        return "from the fast worker"

    await Worker(backend, fast, name="fast").run(burst=True)
    release.set()
    other = await backend.push("after")  # the slow worker still takes work
    result = await backend.wait_one(other, timeout=5)
    assert result.result == "after"
    task = await backend.fetch_by_id(task_id)
    assert task is not None
    assert (task.status, task.result, task.attempt) == (Status.DONE, "from the fast worker", 2)
    slow_worker.stop()
    await running


async def test_heartbeat_keeps_the_lease_of_a_long_task(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("long")
    started, release = asyncio.Event(), asyncio.Event()
    beats = asyncio.Queue[None]()

    async def long(_: str) -> str:
        started.set()
        await release.wait()
        return "finished"

    worker = Worker(
        backend, long, heartbeat_interval=0.01, resume_interval=FAR, handle_signals=False
    )
    worker.on(lambda e: beats.put_nowait(None) if type(e).__name__ == "Heartbeat" else None)
    running = asyncio.create_task(worker.run())
    await started.wait()
    for _ in range(4):
        clock.advance(20)  # 80 s in all: well past one 30 s lease
        await beats.get()
        await beats.get()  # a full beat after the advance
        assert await backend.resume_abandoned() == 0
    release.set()
    result = await backend.wait_one(task_id, timeout=5)
    assert result.result == "finished"
    worker.stop()
    await running


async def test_the_worker_resumes_a_dead_workers_tasks(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("orphan")
    claimed = await anext(backend.poll(conveyor.WorkerInfo("dead", "default")))
    assert claimed is not None and claimed.id == task_id
    clock.advance(31)

    async def handle(name: str) -> str:
        return f"rescued {name}"

    await Worker(backend, handle).run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, "rescued orphan")
    assert task.attempt == 2


def test_bad_handlers_are_refused_with_the_reason(backend: Backend) -> None:
    with pytest.raises(TypeError, match="takes no arguments"):
        Worker(backend, lambda: None)
    with pytest.raises(TypeError, match="requires 3 arguments"):
        Worker(backend, lambda a, b, c: None)
    with pytest.raises(ValueError, match="concurrency"):
        Worker(backend, lambda a: None, concurrency=0)


async def test_concurrency_bounds_tasks_in_flight_and_sync_handlers_run_in_parallel(
    backend: Backend,
) -> None:
    for n in range(10):
        await backend.push(n)
    barrier = threading.Barrier(5, timeout=10)

    def meet(_: int) -> str:
        barrier.wait()  # only passes if five handlers run at once
        return "met"

    await Worker(backend, meet, concurrency=5).run(burst=True)
    done = await backend.list_tasks(status=Status.DONE)
    assert len(done) == 10 and {t.result for t in done} == {"met"}

    running = peak = 0
    for n in range(30):
        await backend.push(n)

    async def track(_: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    await Worker(backend, track, concurrency=4).run(burst=True)
    assert peak == 4

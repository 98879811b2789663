"""A failing backend: a running worker logs one line and retries; a burst stops and raises;
a backend that never recovers stops the worker loudly (issue 14 item 3, issue 15 item 3)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import (
    Backend,
    BackendUnavailable,
    Status,
    Task,
    TaskId,
    Worker,
    WorkerInfo,
    WorkerState,
    hookimpl,
)
from conveyor.events import Error, Event, Heartbeat, Success
from conveyor.outcome import Outcome

sys.path.insert(0, str(Path(__file__).parent))
from worker_plugins import env_with, install

CLI = (sys.executable, "-m", "conveyor.cli")


class Flaky:
    """A memory backend whose ``poll`` (and ``heartbeat``, ``ack``) raise the first few times
    (``poll_failures=-1``: every time)."""

    def __init__(
        self,
        poll_failures: int,
        heartbeat_failures: int = 0,
        ack_failures: int = 0,
        error: Exception | None = None,
    ) -> None:
        self.inner = conveyor.open("memory")
        self.poll_failures = poll_failures
        self.heartbeat_failures = heartbeat_failures
        self.ack_failures = ack_failures
        self.error = error or ConnectionError("store unreachable")
        self.polls_started = 0

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        self.polls_started += 1
        if self.poll_failures:
            self.poll_failures -= 1
            raise self.error
        async for item in self.inner.hooks.poll(worker):
            yield item

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        if self.heartbeat_failures:
            self.heartbeat_failures -= 1
            raise ConnectionError("heartbeat lost")
        await self.inner.hooks.heartbeat(worker)

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        if self.ack_failures:
            self.ack_failures -= 1
            raise ConnectionError("ack lost")
        await self.inner.hooks.ack(task, outcome)

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.inner.hooks.push(tasks)

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return await self.inner.hooks.fetch_by_id(task_id)


async def test_a_running_worker_retries_a_failing_poll_with_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Flaky(poll_failures=3)
    backend = Backend(flaky, name="flaky")
    ids = [await backend.push(n) for n in range(5)]
    events: list[Event] = []

    async def square(n: int) -> int:
        return n * n

    worker = Worker(backend, square, error_backoff=0.001, handle_signals=False)

    def listen(event: Event) -> None:
        events.append(event)
        if sum(isinstance(e, Success) for e in events) == len(ids):
            worker.stop()

    worker.on(listen)
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        await asyncio.wait_for(worker.run(), timeout=30)
    for n, task_id in enumerate(ids):
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.result) == (Status.DONE, n * n)
    backend_errors = [e for e in events if isinstance(e, Error) and e.task is None]
    assert [str(e.error) for e in backend_errors] == ["store unreachable"] * 3
    assert flaky.polls_started == 4
    failures = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert len(failures) == 3
    for record in failures:  # one line each, no traceback
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert "\n" not in record.getMessage()
        assert "ConnectionError: store unreachable" in record.getMessage()
    assert any("poll works again after 3 failure(s)" in r.getMessage() for r in caplog.records)


async def test_a_burst_stops_at_a_failed_poll_and_raises_backend_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Flaky(poll_failures=1)
    backend = Backend(flaky, name="flaky")
    task_id = await backend.push(1)

    async def handle(n: int) -> int:
        return n

    worker = Worker(backend, handle, error_backoff=0.001)
    with (
        caplog.at_level(logging.WARNING, logger="conveyor.worker"),
        pytest.raises(BackendUnavailable, match="backend 'flaky' failed to poll") as raised,
    ):
        await asyncio.wait_for(worker.run(burst=True), timeout=30)
    assert isinstance(raised.value.__cause__, ConnectionError)  # the original, kept
    assert "ConnectionError: store unreachable" in str(raised.value)
    assert worker.state is WorkerState.STOPPED
    assert flaky.polls_started == 1  # no retry: the caller decides
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.attempt) == (Status.PENDING, 0)
    assert not caplog.records  # the exception says it; a warning would only repeat it


async def test_a_burst_reraises_backend_unavailable_as_the_backend_worded_it() -> None:
    error = BackendUnavailable("store at /mnt/tasks cannot be reached: mount it and retry")
    backend = Backend(Flaky(poll_failures=1, error=error), name="flaky")

    async def handle(_: Any) -> None:
        return None

    with pytest.raises(BackendUnavailable) as raised:
        await asyncio.wait_for(Worker(backend, handle).run(burst=True), timeout=30)
    assert raised.value is error


async def test_a_backend_whose_every_poll_fails_stops_a_running_worker_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No zombie: a broken store does not leave a worker reporting RUNNING for ever."""
    flaky = Flaky(poll_failures=-1, error=OSError(28, "No space left on device"))
    backend = Backend(flaky, name="flaky")
    states: list[WorkerState] = []

    async def handle(_: Any) -> None:
        return None

    worker = Worker(
        backend,
        handle,
        error_backoff=0.001,
        error_backoff_max=0.01,
        give_up_after=0.2,
        handle_signals=False,
        listeners=[lambda e: states.append(worker.state) if isinstance(e, Error) else None],
    )
    with (
        caplog.at_level(logging.WARNING, logger="conveyor.worker"),
        pytest.raises(BackendUnavailable, match="No space left on device") as raised,
    ):
        await asyncio.wait_for(worker.run(), timeout=30)
    assert isinstance(raised.value.__cause__, OSError)
    assert worker.state is WorkerState.STOPPED
    assert flaky.polls_started >= 2 and states  # it did retry before giving up
    stopping = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(stopping) == 1 and "stopping" in stopping[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


def test_give_up_after_is_validated() -> None:
    backend = Backend(Flaky(poll_failures=0), name="flaky")
    with pytest.raises(ValueError, match="give_up_after must be more than 0"):
        Worker(backend, lambda a: None, give_up_after=0)


@pytest.mark.parametrize("error", ["unavailable", "oserror"])
def test_conveyor_worker_burst_on_a_broken_backend_exits_non_zero_with_one_line(
    tmp_path: Path, error: str
) -> None:
    install(tmp_path, "broken")
    (tmp_path / "jobs.py").write_text("def handle(args):\n    return args\n")
    done = subprocess.run(
        [*CLI, "-b", "broken://", "worker", "jobs:handle", "--burst"],
        cwd=tmp_path,
        env=env_with(tmp_path, BROKEN_ERROR=error),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("conveyor: error:")]
    assert len(errors) == 1, done.stderr
    expected = "mount it and retry" if error == "unavailable" else "Input/output error"
    assert expected in errors[0]
    assert "Traceback" not in done.stderr
    assert "WARNING" not in done.stderr  # the error line says it once


def test_conveyor_worker_burst_stops_when_registering_finds_the_backend_unavailable(
    tmp_path: Path,
) -> None:
    install(tmp_path, "broken")
    (tmp_path / "jobs.py").write_text("def handle(args):\n    return args\n")
    done = subprocess.run(
        [*CLI, "-b", "broken://", "worker", "jobs:handle", "--burst"],
        cwd=tmp_path,
        env=env_with(tmp_path, BROKEN_REGISTER="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stderr
    assert done.stderr.count("conveyor: error:") == 1, done.stderr
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr


async def test_a_failing_ack_is_retried() -> None:
    flaky = Flaky(poll_failures=0, ack_failures=1)
    backend = Backend(flaky, name="flaky")
    task_id = await backend.push(3)
    events: list[Event] = []

    async def square(n: int) -> int:
        return n * n

    await Worker(backend, square, error_backoff=0.001, listeners=[events.append]).run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, 9)
    assert [str(e.error) for e in events if isinstance(e, Error)] == ["ack lost"]


async def test_failing_heartbeats_are_retried() -> None:
    flaky = Flaky(poll_failures=0, heartbeat_failures=2)
    backend = Backend(flaky, name="flaky")
    events: list[Event] = []
    beat = asyncio.Event()

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event, Heartbeat):
            beat.set()

    async def handle(_: Any) -> None:
        return None

    worker = Worker(
        backend, handle, heartbeat_interval=0.001, error_backoff=0.001, handle_signals=False
    )
    worker.on(listen)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(beat.wait(), timeout=10)
    worker.stop()
    await running
    failures = [e for e in events if isinstance(e, Error)]
    assert [str(e.error) for e in failures] == ["heartbeat lost"] * 2


async def test_a_backend_without_ack_just_runs_tasks() -> None:
    """At-most-once: the backend removes what it hands out; the worker acks nothing."""
    queue: list[bytes] = [b"1", b"2", b"3"]

    class Fire:
        @hookimpl
        async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
            while queue:
                yield Task(TaskId.new(), queue.pop(0))
            yield None

    seen: list[int] = []

    async def handle(n: int) -> None:
        seen.append(n)

    backend = Backend(Fire(), name="fire")
    assert not backend.supports("ack")
    await Worker(backend, handle).run(burst=True)
    assert seen == [1, 2, 3]

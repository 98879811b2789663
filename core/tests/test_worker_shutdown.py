"""Graceful shutdown: in process with ``stop()``, and in a real subprocess with real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import conveyor
from conveyor import Backend, Status, Worker

# The child runs a worker over an in-process memory backend and, after the worker
# returns, prints one JSON line per task so the parent can see what shutdown did.
CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import conveyor

    MODE, GRACE, COUNT = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

    async def main():
        backend = conveyor.open("memory")
        ids = [await backend.push(n) for n in range(COUNT)]
        started = 0

        async def handle(n):
            nonlocal started
            started += 1
            if started == COUNT:
                print("ALL STARTED", flush=True)
            if MODE == "finish":
                await asyncio.sleep(0.3)
            else:
                await asyncio.Event().wait()  # hangs until cancelled
            return n * 10

        worker = conveyor.Worker(backend, handle, concurrency=COUNT, grace_period=GRACE)
        await worker.run()
        for task_id in ids:
            task = await backend.fetch_by_id(task_id)
            print(json.dumps({"status": task.status.value, "attempt": task.attempt,
                              "result": task.result}), flush=True)

    asyncio.run(main())
    """
)


def _start(mode: str, grace: float, count: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(grace), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ALL STARTED", child.stderr.read() if child.stderr else line
    return child


def _finish(child: subprocess.Popen[str]) -> tuple[list[dict[str, Any]], str]:
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_sigterm_lets_tasks_in_flight_finish() -> None:
    child = _start("finish", grace=30, count=3)
    child.send_signal(signal.SIGTERM)
    rows, err = _finish(child)
    assert rows == [{"status": "Done", "attempt": 1, "result": n * 10} for n in range(3)], err
    assert "SIGTERM" in err


def test_sigterm_after_the_grace_period_releases_tasks_to_run_again() -> None:
    child = _start("hang", grace=0.2, count=2)
    child.send_signal(signal.SIGTERM)
    rows, err = _finish(child)
    # Released: pending again, the interrupted attempt not counted.
    assert rows == [{"status": "Pending", "attempt": 0, "result": None}] * 2, err


def test_a_second_signal_stops_at_once() -> None:
    child = _start("hang", grace=600, count=2)
    child.send_signal(signal.SIGINT)
    time.sleep(0.2)  # the first signal must be seen first; the second is the point
    child.send_signal(signal.SIGINT)
    rows, err = _finish(child)
    assert rows == [{"status": "Pending", "attempt": 0, "result": None}] * 2, err
    assert "again" in err


@pytest.fixture
async def backend() -> Any:
    async with conveyor.open("memory") as opened:
        yield opened


async def test_stop_waits_for_tasks_in_flight(backend: Backend) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    task_id = await backend.push("x")

    async def handle(_: str) -> str:
        started.set()
        await release.wait()
        return "finished"

    worker = Worker(backend, handle, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    await asyncio.sleep(0.01)
    assert not running.done()  # still waiting for the task in flight
    release.set()
    await running
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, "finished")


async def test_stop_cancels_after_the_grace_period_and_releases(backend: Backend) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    task_id = await backend.push("x")

    async def handle(_: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker(backend, handle, grace_period=0.05, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    await running
    assert cancelled.is_set()
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.attempt) == (Status.PENDING, 0)

    async def finish(_: str) -> str:
        return "second run"

    await Worker(backend, finish).run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, "second run")


async def test_cancelling_run_releases_what_is_in_flight(backend: Backend) -> None:
    started = asyncio.Event()
    task_id = await backend.push("x")

    async def handle(_: str) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = Worker(backend, handle, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.PENDING
    assert worker.state is conveyor.WorkerState.STOPPED


async def test_an_idle_worker_stops_promptly(backend: Backend) -> None:
    async def handle(_: str) -> None:
        return None

    worker = Worker(backend, handle, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.02)  # let it reach the idle wait inside poll
    worker.stop()
    await asyncio.wait_for(running, timeout=5)
    assert worker.state is conveyor.WorkerState.STOPPED


async def test_the_worker_puts_back_the_signal_handlers_it_found(backend: Backend) -> None:
    import signal as signals

    before = {s: signals.getsignal(s) for s in (signals.SIGINT, signals.SIGTERM)}
    await backend.push("x")
    during: list[Any] = []

    async def handle(_: str) -> None:
        during.append(signals.getsignal(signals.SIGTERM))

    await Worker(backend, handle).run(burst=True)
    assert len(during) == 1 and during[0] is not before[signals.SIGTERM]  # the worker's own
    assert {s: signals.getsignal(s) for s in before} == before

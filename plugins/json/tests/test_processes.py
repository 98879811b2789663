"""Real processes on one store file: SIGKILLed pushers and workers, many at once."""

from __future__ import annotations

import asyncio
import collections
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conveyor_json.errors import TornTailWarning

import conveyor
from conveyor import ManualClock, Status, TaskContext, Worker

PUSHER = """
import asyncio, sys, conveyor
async def main():
    backend = conveyor.open(sys.argv[1])
    limit = int(sys.argv[2])
    attempts = int(sys.argv[4]) if len(sys.argv) > 4 else None
    for i in range(limit if limit else 10**9):
        tid = await backend.push({"n": i, "by": sys.argv[3]}, max_attempts=attempts)
        print(tid, flush=True)
    await backend.aclose()
asyncio.run(main())
"""

STUCK_WORKER = """
import asyncio, sys, conveyor
async def main():
    backend = conveyor.open(sys.argv[1])
    async def handler(args, ctx):
        print(ctx.id, ctx.attempt, flush=True)
        await asyncio.Event().wait()   # mid-task until killed
    await conveyor.Worker(backend, handler, name="doomed", concurrency=5).run()
asyncio.run(main())
"""

DRAINER = """
import asyncio, os, sys, conveyor
async def main():
    backend = conveyor.open(sys.argv[1])
    log = open(sys.argv[2], "a", buffering=1)
    def handler(args, ctx):
        log.write(f"{ctx.id} {ctx.attempt}\\n")
    await conveyor.Worker(backend, handler, name=sys.argv[3], concurrency=8).run()
    log.close()
asyncio.run(main())
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    # stderr goes to a file, never a pipe nobody reads: a chatty child must not block.
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the child
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    proc.errors = errors  # type: ignore[attr-defined]
    return proc


def stderr_of(proc: subprocess.Popen[str]) -> str:
    errors = proc.errors  # type: ignore[attr-defined]
    errors.seek(0)
    return str(errors.read())[-3000:]


def read_lines(proc: subprocess.Popen[str], count: int) -> list[str]:
    assert proc.stdout is not None
    got = []
    while len(got) < count:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"child ended early ({proc.returncode}): {stderr_of(proc)}")
        got.append(line.strip())
    return got


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, stderr_of(proc)


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr_of(proc)
    return out


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"json://{tmp_path}/tasks.json"


@pytest.fixture
def later() -> ManualClock:
    """A clock an hour ahead: every lease taken by a real-time process has expired."""
    return ManualClock(time.time() + 3600)


@pytest.fixture
def quiet_torn_tail() -> Iterator[None]:
    # A process killed mid-push may leave a torn last record; dropping it is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)
        yield


@pytest.mark.usefixtures("quiet_torn_tail")
async def test_pushes_survive_a_sigkill_right_after_they_return(url: str) -> None:
    await conveyor.open(url).aclose()  # create the store before the child uses it
    child = spawn(PUSHER, url, 0, "child")
    acknowledged = read_lines(child, 200)
    kill(child)
    async with conveyor.open(url) as backend:
        for tid in acknowledged:
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.status is Status.PENDING
        # and the store takes writes after the crash
        await backend.push({"after": "crash"})


async def test_a_killed_workers_tasks_are_resumed_and_rerun(url: str, later: ManualClock) -> None:
    async with conveyor.open(url) as backend:
        ids = await backend.push_many({"n": i} for i in range(20))
    child = spawn(STUCK_WORKER, url)
    in_flight = {line.split()[0] for line in read_lines(child, 5)}
    kill(child)

    async with conveyor.open(url, clock=later) as backend:
        for tid in in_flight:
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.status is Status.RUNNING, (task, stderr_of(child))
            assert task.lock_by == "doomed"
        ran: list[tuple[str, int]] = []

        def handler(args: Any, ctx: TaskContext) -> None:
            ran.append((ctx.id, ctx.attempt))

        # The worker resumes abandoned tasks on start, then drains everything.
        await Worker(backend, handler, concurrency=4, handle_signals=False).run(burst=True)
        assert sorted(tid for tid, _ in ran) == sorted(ids), (ran, in_flight)
        for tid, attempt in ran:
            assert attempt == (2 if tid in in_flight else 1), (tid, ran, in_flight)
        done = await backend.check_status(ids)
        assert len(done) == 20 and all(r.status is Status.DONE for r in done)


async def test_four_pushers_and_two_workers_share_one_file(url: str, tmp_path: Path) -> None:
    per_pusher = 150
    backend = conveyor.open(url)
    logs = [tmp_path / f"drainer{k}.log" for k in range(2)]
    drainers = [spawn(DRAINER, url, log, f"drainer-{k}") for k, log in enumerate(logs)]
    deadline = time.monotonic() + 120
    while len(await backend.list_workers()) < 2:  # both workers up before the pushes start
        assert time.monotonic() < deadline, "drainers did not start in 120 s"
        await asyncio.sleep(0.05)
    pushers = [spawn(PUSHER, url, per_pusher, f"p{k}") for k in range(4)]
    pushed: list[str] = []
    for proc in pushers:
        pushed += finish(proc).split()
    assert len(pushed) == len(set(pushed)) == 4 * per_pusher

    async with backend:
        # Wait (bounded, not timed) for the drainers: every pushed task reaches DONE.
        deadline = time.monotonic() + 120
        while len(await backend.check_status(pushed)) < len(pushed):
            assert time.monotonic() < deadline, [stderr_of(p) for p in drainers]
            await asyncio.sleep(0.1)
        for proc in drainers:
            proc.send_signal(signal.SIGTERM)
        for proc in drainers:
            finish(proc)
        runs = collections.Counter()
        for log in logs:
            for line in log.read_text().splitlines():
                tid, _attempt = line.split()
                runs[tid] += 1
        assert set(runs) == set(pushed)  # nothing lost, nothing invented
        for tid in pushed:
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.status is Status.DONE
            # a handler ran once per attempt the store counted, never twice for one claim
            assert runs[tid] == task.attempt == 1
        shared = {line.split()[0] for line in logs[0].read_text().splitlines()}
        assert shared and len(shared) < len(pushed)  # both workers took part


CHAOS_WORKER = """
import asyncio, random, sys, conveyor
async def main():
    backend = conveyor.open(sys.argv[1])
    log = open(sys.argv[2], "a", buffering=1)
    async def handler(args, ctx):
        log.write(f"{ctx.id} {ctx.attempt}\\n")
        await asyncio.sleep(random.random() / 100)
    await conveyor.Worker(backend, handler, concurrency=8).run()
asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.usefixtures("quiet_torn_tail")
async def test_workers_killed_at_random_moments_lose_and_duplicate_nothing(
    tmp_path: Path, later: ManualClock
) -> None:
    url = f"json://{tmp_path}/tasks.json?lease_seconds=1"
    await conveyor.open(url).aclose()
    log = tmp_path / "runs.log"
    pusher = spawn(PUSHER, url, 600, "chaos", 100)
    rng = random.Random(5)
    for _ in range(12):
        victim = spawn(CHAOS_WORKER, url, log)
        await asyncio.sleep(0.3 + rng.random())
        kill(victim)
    pushed = finish(pusher).split()

    async with conveyor.open(url, clock=later) as backend:
        lines = log.read_text().splitlines()
        assert lines, "the killed workers ran nothing: the test did not test anything"

        def handler(args: Any, ctx: TaskContext) -> None:
            lines.append(f"{ctx.id} {ctx.attempt}")

        await Worker(backend, handler, concurrency=8, handle_signals=False).run(burst=True)
        runs = collections.Counter(lines)
        assert max(runs.values()) == 1  # no attempt was ever handed to two workers
        attempts_run = collections.defaultdict(set)
        for line in lines:
            tid, attempt = line.split()
            attempts_run[tid].add(int(attempt))
        assert set(attempts_run) == set(pushed)
        for tid in pushed:
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.status is Status.DONE, task
            # the successful attempt ran exactly once; earlier ones at most once each
            assert task.attempt in attempts_run[tid]
            assert max(attempts_run[tid]) == task.attempt

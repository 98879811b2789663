"""Worker processes SIGKILLed mid-task, and the server restarted under running workers.

The workers are real ``conveyor.Worker`` processes (``chaos_worker.py``) on a
1-second lease; the dead ones' tasks come back through the live workers'
heartbeats and periodic ``resume_abandoned``.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, ConveyorError, Status, TaskId

WORKER = Path(__file__).with_name("chaos_worker.py")
MAX_ATTEMPTS = 10


class Workers:
    """The worker processes of one test, each with its own stderr file."""

    def __init__(self, url: str, prefix: str, folder: Path) -> None:
        self.url, self.prefix, self.folder = url, prefix, folder
        self.log = folder / "starts.log"
        self.live: list[subprocess.Popen[bytes]] = []
        self.spawned = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        self.spawned += 1
        err = (self.folder / f"worker-{self.spawned}.err").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), self.url, self.prefix, str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        err.close()
        self.live.append(proc)
        return proc

    def starts(self) -> Counter[int]:
        if not self.log.exists():
            return Counter()
        return Counter(int(line.split()[0]) for line in self.log.read_text().splitlines())

    def stop_all(self) -> None:
        for proc in self.live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.live:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _held_by(backend: Backend, pid: int) -> list[TaskId]:
    running = await backend.list_tasks(status=Status.RUNNING, page_size=1000)
    return [t.id for t in running if t.lock_by and f":{pid}:" in t.lock_by]


async def _kill_mid_task(backend: Backend, workers: Workers) -> list[TaskId] | None:
    """SIGKILL a worker while it holds tasks; the ids it held (None if none got busy)."""
    for _ in range(400):
        for proc in random.sample(workers.live, len(workers.live)):
            if proc.poll() is not None:
                continue
            if await _held_by(backend, proc.pid):
                proc.kill()
                proc.wait()
                workers.live.remove(proc)
                # What it still held once dead (it may have acked some in between).
                held = await _held_by(backend, proc.pid)
                if held:
                    return held
                workers.spawn()
        await asyncio.sleep(0.02)
    return None


async def _chaos(url: str, prefix: str, folder: Path, tasks: int, kills: int) -> None:
    backend = conveyor.open(url, prefix=prefix)
    workers = Workers(url, prefix, folder)
    try:
        ids = await backend.push_many(range(tasks), max_attempts=MAX_ATTEMPTS)
        for _ in range(3):
            workers.spawn()
        victims: list[TaskId] = []
        for _ in range(kills):
            held = await _kill_mid_task(backend, workers)
            if held is None:
                break  # everything finished before this kill: the rest of the run still checks
            victims += held
            workers.spawn()
        results = {r.task_id: r async for r in backend.wait_for(ids, timeout=120)}
        assert len(results) == tasks
        killed = [r for r in results.values() if r.status is not Status.DONE]
        assert not killed, f"{len(killed)} task(s) did not complete: {killed[:3]}"
        assert {r.result for r in results.values()} == set(range(tasks))
        assert victims, "no worker was ever killed while holding a task"
        for tid in victims:
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.status is Status.DONE
            assert task.attempt >= 2, "a task held by a killed worker must be claimed again"
        starts = workers.starts()
        assert set(starts) == set(range(tasks)), "every task was started"
        assert max(starts.values()) <= MAX_ATTEMPTS, "a task started more often than attempts"
        duplicates = sum(n - 1 for n in starts.values())
        print(f"chaos: {tasks} tasks, {len(victims)} held by killed workers, "
              f"{duplicates} duplicate starts, {workers.spawned} worker processes")  # fmt: skip
    finally:
        workers.stop_all()
        await backend.aclose()


async def test_sigkilled_workers_lose_nothing(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    await _chaos(redis_url, redis_prefix, tmp_path, tasks=300, kills=3)


@pytest.mark.slow
async def test_sigkilled_workers_lose_nothing_soak(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    await _chaos(redis_url, redis_prefix, tmp_path, tasks=3000, kills=25)


async def _push_retrying(backend: Backend, items: range) -> list[TaskId]:
    """Push while the server comes back: a failed push raises, so the caller retries."""
    for _ in range(100):
        try:
            return await backend.push_many(items)
        except ConveyorError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back")


async def test_workers_recover_after_a_server_restart(
    redis_server: object, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    if redis_server is None:
        pytest.skip("CONVEYOR_REDIS_URL names an external server this test must not restart")
    backend = conveyor.open(redis_url, prefix=redis_prefix)
    workers = Workers(redis_url, redis_prefix, tmp_path)
    try:
        for _ in range(2):
            workers.spawn()
        before = await backend.push_many(range(50))
        assert len([r async for r in backend.wait_for(before, timeout=60)]) == 50
        redis_server.restart(down=0.5)  # type: ignore[attr-defined]
        # No persistence: the store is empty now. The same worker processes must
        # reconnect and run what is pushed next.
        after = await _push_retrying(backend, range(100, 150))
        results = [r async for r in backend.wait_for(after, timeout=60)]
        assert sorted(r.result for r in results) == list(range(100, 150))
        assert all(proc.poll() is None for proc in workers.live), "a worker died"
    finally:
        workers.stop_all()
        await backend.aclose()

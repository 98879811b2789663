"""Worker processes SIGKILLed mid-task, and the server restarted under running workers.

The workers are real ``conveyor.Worker`` processes (``conveyor.testing.chaos``) on a
1-second lease; the dead ones' tasks come back through the live workers'
heartbeats and periodic ``resume_abandoned``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, ConveyorError, Status, TaskId
from conveyor.testing.chaos import Workers, kill_mid_task

MAX_ATTEMPTS = 10


async def _chaos(url: str, prefix: str, folder: Path, tasks: int, kills: int) -> None:
    backend = conveyor.open(url, prefix=prefix)
    workers = Workers(url, folder, prefix=prefix)
    try:
        ids = await backend.push_many(range(tasks), max_attempts=MAX_ATTEMPTS)
        for _ in range(3):
            workers.spawn()
        victims: list[TaskId] = []
        for _ in range(kills):
            held = await kill_mid_task(backend, workers)
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
    workers = Workers(redis_url, tmp_path, prefix=redis_prefix)
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

"""Worker processes SIGKILLed mid-task, connections killed by the server, the server
restarted under running workers and pushers: nothing acknowledged is lost.

The workers are real ``conveyor.Worker`` processes (``conveyor.testing.chaos``) on a
1-second lease; the dead ones' tasks come back through the live workers' periodic
``resume_abandoned``. Checked every time: 0 lost (every task Done with its own
result), 0 phantom (nothing ran that was not pushed), every re-run counted in
``attempt`` (a task's starts never exceed its attempts).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, ConveyorError, Status, TaskId
from conveyor.testing.chaos import Workers, kill_mid_task

MAX_ATTEMPTS = 10


async def _check(backend: Backend, workers: Workers, ids: list[TaskId], values: range) -> int:
    """0 lost, 0 phantom, every start counted in attempts; the duplicate starts."""
    results = {r.task_id: r async for r in backend.wait_for(ids, timeout=180)}
    assert len(results) == len(ids), "lost: some tasks never finished"
    bad = [r for r in results.values() if r.status is not Status.DONE]
    assert not bad, f"{len(bad)} task(s) did not complete: {bad[:3]}"
    assert sorted(r.result for r in results.values()) == list(values)
    starts = workers.starts()
    assert set(starts) <= set(values), f"phantom: started {set(starts) - set(values)}"
    assert set(starts) == set(values), "every task was started"
    by_value = {r.result: r.task_id for r in results.values()}
    for value, n in starts.items():
        task = await backend.fetch_by_id(by_value[value])
        assert task is not None and n <= task.attempt <= MAX_ATTEMPTS, (
            f"task {value} started {n} times but counts {task and task.attempt} attempts"
        )
    return sum(n - 1 for n in starts.values())


async def _chaos(url: str, schema: str, folder: Path, tasks: int, kills: int) -> None:
    backend = conveyor.open(url, schema=schema)
    workers = Workers(url, folder, schema=schema)
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
        duplicates = await _check(backend, workers, ids, range(tasks))
        assert victims, "no worker was ever killed while holding a task"
        for tid in victims:
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.status is Status.DONE
            assert task.attempt >= 2, "a task held by a killed worker must be claimed again"
        print(f"chaos: {tasks} tasks, {len(victims)} held by killed workers, "
              f"{duplicates} duplicate starts, {workers.spawned} worker processes")  # fmt: skip
    finally:
        workers.stop_all()
        await backend.aclose()


async def test_sigkilled_workers_lose_nothing(pg_url: str, pg_schema: str, tmp_path: Path) -> None:
    await _chaos(pg_url, pg_schema, tmp_path, tasks=300, kills=3)


@pytest.mark.slow
async def test_sigkilled_workers_lose_nothing_soak(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    await _chaos(pg_url, pg_schema, tmp_path, tasks=3000, kills=25)


async def _push_retrying(backend: Backend, items: range) -> list[TaskId]:
    """Push while the server comes back; a push refused meanwhile is made again."""
    for _ in range(300):
        try:
            return await backend.push_many(items)
        except ConveyorError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back")


async def test_connections_killed_by_the_server_are_replaced(
    pg_url: str, pg_schema: str, pg_terminate: Callable[[], int], tmp_path: Path
) -> None:
    backend = conveyor.open(pg_url, schema=pg_schema)
    workers = Workers(pg_url, tmp_path, schema=pg_schema)
    try:
        ids = await backend.push_many(range(200), max_attempts=MAX_ATTEMPTS)
        for _ in range(2):
            workers.spawn()
        killed = 0
        for _ in range(5):
            await asyncio.sleep(0.3)
            killed += await asyncio.to_thread(pg_terminate)
            ids += await _push_retrying(backend, range(len(ids), len(ids) + 20))
        assert killed >= 5, "no connection was killed"
        await _check(backend, workers, ids, range(len(ids)))
        assert all(proc.poll() is None for proc in workers.live), "a worker died"
    finally:
        workers.stop_all()
        await backend.aclose()


def _restart_allowed() -> str | None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return "needs root and pg_ctlcluster to restart the server"
    if not (os.environ.get("CI") or os.environ.get("CONVEYOR_PG_RESTART")):
        return "restarts the machine's shared server: runs with CI=true or CONVEYOR_PG_RESTART=1"
    return None


async def test_workers_and_pushers_ride_out_a_server_restart(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    reason = _restart_allowed()
    if reason:
        pytest.skip(reason)
    backend = conveyor.open(pg_url, schema=pg_schema)
    workers = Workers(pg_url, tmp_path, schema=pg_schema)
    try:
        ids = await backend.push_many(range(100), max_attempts=MAX_ATTEMPTS)
        for _ in range(2):
            workers.spawn()
        pushed: list[TaskId] = []

        async def pusher() -> None:
            # Pushes one by one all through the restart: each either stored or raised.
            for n in range(100, 300):
                pushed.extend(await _push_retrying(backend, range(n, n + 1)))
                await asyncio.sleep(0.005)

        pushing = asyncio.ensure_future(pusher())
        await asyncio.sleep(0.3)
        version = (await asyncio.to_thread(_cluster))[0]
        await asyncio.to_thread(
            subprocess.run,
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
        )
        await asyncio.wait_for(pushing, 120)
        await _check(backend, workers, ids + pushed, range(300))
        assert all(proc.poll() is None for proc in workers.live), "a worker died"
    finally:
        workers.stop_all()
        await backend.aclose()


def _cluster() -> list[str]:
    return sorted(os.listdir("/etc/postgresql"))

"""Soak: thousands of tasks that succeed, fail, abort, defer and hang, with workers stopped
and restarted mid-flight. Every task must end Done or Killed, within its attempts."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import conveyor
from conveyor import Abort, RetryAfter, Status, TaskContext, Worker
from conveyor.middleware import RetryPolicy, Timeout

COUNT = 3_000
MAX_ATTEMPTS = 4


@pytest.mark.slow
async def test_chaos_ends_with_every_task_done_or_killed() -> None:
    rng = random.Random(7)
    async with conveyor.open("memory", idle_wait=0.01) as backend:
        ids = await backend.push_many(range(COUNT), max_attempts=MAX_ATTEMPTS)
        completions: dict[Any, int] = {}

        async def chaotic(n: int, ctx: TaskContext) -> int:
            roll = rng.random()
            if roll < 0.10:
                raise ValueError(f"task {n} failed")
            if roll < 0.15:
                raise RetryAfter(0)
            if roll < 0.17:
                raise Abort(f"task {n} gave up")
            if roll < 0.19:
                await asyncio.sleep(1)  # past the timeout: cancelled
            elif roll < 0.40:
                await asyncio.sleep(rng.random() / 1000)
            completions[ctx.id] = completions.get(ctx.id, 0) + 1
            return n * 2

        def make() -> Worker:
            return Worker(
                backend,
                chaotic,
                concurrency=rng.choice([1, 5, 20]),
                grace_period=rng.choice([0.0, 0.005, 1.0]),
                middleware=[RetryPolicy(base=0.001, max_delay=0.005), Timeout(0.02)],
                handle_signals=False,
            )

        for _ in range(200):
            finished = await backend.check_status(ids)
            if len(finished) == COUNT:
                break
            worker = make()
            running = asyncio.create_task(worker.run())
            await asyncio.sleep(rng.random() / 20)
            worker.stop()  # often with tasks in flight: they finish or are released
            await running
        finished = await backend.check_status(ids)
        assert len(finished) == COUNT

        tasks = {}
        for page in range(1, COUNT // 1000 + 2):
            for task in await backend.list_tasks(page=page, page_size=1000):
                tasks[task.id] = task
        assert len(tasks) == COUNT
        for n, task_id in enumerate(ids):
            task = tasks[task_id]
            assert 1 <= task.attempt <= MAX_ATTEMPTS
            assert task.lock_by is None and task.lease_token is None
            if task.status is Status.DONE:
                assert task.result == n * 2
                assert completions.get(task_id, 0) >= 1
            else:
                assert task.status is Status.KILLED
                assert task.last_error
        # Some of each fate happened, or the soak proved little.
        statuses = {t.status for t in tasks.values()}
        assert statuses == {Status.DONE, Status.KILLED}

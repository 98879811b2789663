"""Debounced push notifications: fewer ``pg_notify`` calls, and still no idle worker left asleep.

Each worker here sleeps an hour between looks (``idle_wait=3600``): only a
notification, or the look shortly after one, can hand it a task before GUARD.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from conveyor import Backend, Task, WorkerInfo
from conveyor.outcome import Done

GUARD = 20.0  # seconds before a call is called hung; not a timing assertion


async def _next(stream: AsyncIterator[Task[bytes] | None]) -> Task[bytes] | None:
    return await asyncio.wait_for(anext(stream), GUARD)


async def _idle(stream: AsyncIterator[Task[bytes] | None]) -> asyncio.Future[Task[bytes] | None]:
    """The stream's next item, asked for once the poll has found nothing and sleeps long
    (past the look it takes shortly after a notification, which yields None)."""
    assert await _next(stream) is None
    for _ in range(5):
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.4)
        if not waiting.done():
            return waiting
        assert waiting.result() is None
    raise AssertionError("the poll never settled into its long sleep")


async def _listen(url: str, channel: str) -> psycopg.AsyncConnection[object]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await conn.execute(f'LISTEN "{channel}"')
    return conn


async def _heard(conn: psycopg.AsyncConnection[object]) -> list[str]:
    """Payloads of the notifications that arrived so far (reads for a moment)."""
    out: list[str] = []
    async for note in conn.notifies(timeout=0.3):
        out.append(note.payload)
    return out


async def test_pushes_within_the_window_send_one_notification_and_a_trailing_one(
    pg_url: str, pg_schema: str, pg_open: Callable[..., Backend]
) -> None:
    listener = await _listen(pg_url, f"{pg_schema}_push")
    pusher = pg_open(notify_window=1.0)
    try:
        async with pusher:
            ids = [await pusher.push(i) for i in range(20)]
            assert await _heard(listener) == [pusher.queue]  # the leading edge only
            await asyncio.sleep(1.5)  # past 1.5 windows
            assert await _heard(listener) == [pusher.queue]  # the trailing one
            assert all(await asyncio.gather(*(pusher.fetch_by_id(i) for i in ids)))
    finally:
        await listener.close()


async def test_a_push_inside_the_window_still_wakes_an_idle_worker(
    pg_open: Callable[..., Backend],
) -> None:
    worker_side = pg_open(idle_wait=3600)
    pusher = pg_open(notify_window=2.0)
    async with worker_side, pusher:
        stream = worker_side.poll(WorkerInfo("w-window", worker_side.queue))
        waiting = await _idle(stream)
        first = await pusher.push("first")  # notifies: the window's leading edge
        task = await asyncio.wait_for(waiting, GUARD)
        assert task is not None and task.id == first
        await worker_side.hooks.ack(task, Done())
        waiting = await _idle(stream)
        second = await pusher.push("second")  # inside the window: a plain INSERT
        task = await asyncio.wait_for(waiting, GUARD)  # woken by the trailing notification
        assert task is not None and task.id == second
        await worker_side.hooks.ack(task, Done())
        await stream.aclose()


PUSH_AND_DIE = """
import asyncio, os, sys, time
import conveyor

async def main():
    backend = conveyor.open(sys.argv[1], schema=sys.argv[2], notify_window=10)
    await backend.push("first")
    time.sleep(float(sys.argv[3]))  # the worker takes it and goes idle
    await backend.push("second")  # inside the window: no notification of its own
    os._exit(0)  # dies before the trailing notification is due

asyncio.run(main())
"""


async def test_a_worker_looks_again_after_a_notification_when_its_pusher_died(
    pg_url: str, pg_schema: str, pg_open: Callable[..., Backend]
) -> None:
    worker_side = pg_open(idle_wait=3600)
    async with worker_side:
        stream = worker_side.poll(WorkerInfo("w-orphan", worker_side.queue))
        waiting = await _idle(stream)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUSH_AND_DIE, pg_url, pg_schema, "0.1"
        )
        got = []
        next_item = waiting
        while len(got) < 2:  # taken as they come, while the pusher runs
            task = await asyncio.wait_for(next_item, GUARD)
            next_item = asyncio.ensure_future(anext(stream))
            if task is not None:
                got.append(bytes(task.args))
                await worker_side.hooks.ack(task, Done())
        assert await asyncio.wait_for(proc.wait(), GUARD) == 0
        assert sorted(got) == [b'"first"', b'"second"']
        next_item.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await next_item
        await stream.aclose()


def test_notify_window_option() -> None:
    from conveyor_postgres import PostgresBackend

    assert PostgresBackend.Config(notify_window=0).notify_window == 0
    with pytest.raises(ValueError, match="notify_window"):
        PostgresBackend.Config(notify_window=-1)

"""One-by-one pushes on the lane (the connection kept aside for them): committed on
return, alone on it under concurrency, replaced when it dies, never starving a claim.

``notify_window=10`` keeps these pushes off the notifying path after the first, so
they are the ones that go by the lane.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
import pytest

from conveyor import Backend, TaskId, WorkerInfo

GUARD = 20.0  # seconds before a call is called hung; not a timing assertion
LOGGER = "conveyor.postgres"


def _stored(url: str, schema: str, ids: list[TaskId]) -> list[str]:
    """The ids among ``ids`` a connection of its own sees (so: committed), one per row."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT id FROM "{schema}".tasks WHERE id = ANY(%s) ORDER BY id', (list(ids),)
        ).fetchall()
    return [row[0] for row in rows]


async def test_each_push_is_committed_when_it_returns(
    pg_url: str, pg_schema: str, pg_open: Callable[..., Backend]
) -> None:
    async with pg_open(notify_window=10) as backend:
        for i in range(10):
            tid = await backend.push(i)
            assert _stored(pg_url, pg_schema, [tid]) == [tid], f"push {i} not committed"


async def test_concurrent_pushes_are_all_stored_once(
    pg_url: str, pg_schema: str, pg_open: Callable[..., Backend]
) -> None:
    async with pg_open(notify_window=10) as backend:
        ids: list[TaskId] = []
        for _ in range(5):
            ids += await asyncio.gather(*(backend.push(i) for i in range(20)))
        assert len(set(ids)) == 100
        assert _stored(pg_url, pg_schema, ids) == sorted(ids)
        for tid, value in zip(ids, list(range(20)) * 5, strict=True):
            task = await backend.fetch_by_id(tid)
            assert task is not None and task.args == value


def _retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum("retrying" in r.getMessage() for r in caplog.records if r.name == LOGGER)


async def test_pushes_ride_over_their_connection_killed_between_them(
    pg_url: str,
    pg_schema: str,
    pg_open: Callable[..., Backend],
    pg_terminate: Callable[[], int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    async with pg_open(notify_window=10) as backend:
        ids = [await backend.push(-1), await backend.push(-2)]
        for round_ in range(3):
            assert await asyncio.to_thread(pg_terminate) >= 1
            # The first push after the kill meets the dead connection and is sent again
            # on a new one; it returns only once stored, and stores one row.
            ids += [await backend.push(round_ * 10 + i) for i in range(5)]
            assert _retries(caplog) == round_ + 1, "a dead connection served another push"
        assert _stored(pg_url, pg_schema, ids) == sorted(ids)


async def test_a_push_cancelled_in_flight_leaves_later_pushes_working(
    pg_url: str, pg_schema: str, pg_open: Callable[..., Backend], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    async with pg_open(notify_window=10) as backend:
        await backend.push("warm")
        await backend.push("on the lane")
        for _ in range(5):
            # Cancelled once its INSERT is on the wire: the connection may be mid-reply,
            # so it must not serve the next push as it is.
            cancelled = asyncio.ensure_future(backend.push("cancelled"))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            cancelled.cancel()
            await asyncio.gather(cancelled, return_exceptions=True)
            ids = [await backend.push(i) for i in range(3)]
            assert _stored(pg_url, pg_schema, ids) == sorted(ids)
        assert _retries(caplog) == 0, "a push met the connection left mid-reply"


async def test_connections_kept_aside_never_starve_a_claim(
    pg_open: Callable[..., Backend],
) -> None:
    # Two connections: two concurrent pushes use both, and at most one stays aside after.
    async with pg_open(pool_size=2, notify_window=10) as backend:
        await backend.push(0)
        for _ in range(2):
            await asyncio.gather(backend.push(1), backend.push(2))
        stream = backend.poll(WorkerInfo("w-starved", backend.queue))
        try:
            task = await asyncio.wait_for(anext(stream), GUARD)
        finally:
            await stream.aclose()
        assert task is not None, "the claim found no connection in the pool"

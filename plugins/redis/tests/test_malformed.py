"""One corrupted task record, on the real server: set aside by name, the rest keeps flowing.

Each test corrupts a stored hash by hand (as a bad migration or a stray HSET
would) and then runs a real ``conveyor.Worker`` over the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from conveyor_redis import RedisBackend

from conveyor import (
    Backend,
    ConveyorError,
    Done,
    ManualClock,
    Retry,
    Status,
    TaskId,
    Worker,
    WorkerInfo,
)

Open = Callable[..., Backend]


def _plugin(backend: Backend) -> RedisBackend:
    plugin = backend.plugin
    assert isinstance(plugin, RedisBackend)
    return plugin


async def _drain(backend: Backend) -> list[int]:
    ran: list[int] = []

    async def handler(n: int) -> None:
        ran.append(n)

    await Worker(backend, handler, concurrency=4, handle_signals=False).run(burst=True)
    return ran


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("x", "abc", "max_attempts"),
        ("a", "-1", "attempt"),
        ("r", "soon", "run_at"),
        ("pk", "zz", "priority key"),
        ("meta", "{not json", "meta"),
        ("s", "Sleeping", "status"),
    ],
)
async def test_a_corrupted_field_sets_that_task_aside_and_the_rest_run(
    redis_open: Open,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    field: str,
    value: str,
    reason: str,
) -> None:
    backend = redis_open()
    plugin = _plugin(backend)
    ids = [await backend.push(n) for n in range(6)]
    bad = ids[1]  # popped in the same claim as healthy ones (concurrency 4)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.hset(plugin.keys.task(bad), field, value)
        with caplog.at_level(logging.ERROR, logger="conveyor.redis"):
            ran = await _drain(backend)
        assert sorted(ran) == [0, 2, 3, 4, 5]
        for tid in ids:
            if tid != bad:
                task = await backend.fetch_by_id(tid)
                assert task is not None and task.status is Status.DONE
        # Set aside where an operator finds it, with the reason, and out of the flow.
        why = await raw.hget(plugin.keys.malformed, bad)
        assert why is not None and reason in why.decode()
        assert await raw.hget(plugin.keys.task(bad), field) == value.encode()
        assert await backend.list_tasks(status=Status.PENDING) == []
        logged = [r.getMessage() for r in caplog.records]
        assert any(bad in m and plugin.keys.malformed in m for m in logged), logged
        assert not any("unreachable" in m for m in logged), logged
    finally:
        await raw.aclose()
        await backend.aclose()


async def test_a_set_aside_task_runs_again_once_fixed_and_resumed(
    redis_open: Open, redis_url: str
) -> None:
    backend = redis_open()
    plugin = _plugin(backend)
    ids = [await backend.push(n) for n in range(3)]
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.hset(plugin.keys.task(ids[0]), "x", "many")
        assert sorted(await _drain(backend)) == [1, 2]
        with pytest.raises(ConveyorError, match=r"still malformed.*max_attempts"):
            await backend.resume_by_id(ids[0])
        await raw.hset(plugin.keys.task(ids[0]), "x", "3")
        assert await backend.resume_by_id(ids[0])
        assert await raw.hexists(plugin.keys.malformed, ids[0]) == 0
        assert await _drain(backend) == [0]
        task = await backend.fetch_by_id(ids[0])
        assert task is not None and task.status is Status.DONE
    finally:
        await raw.aclose()
        await backend.aclose()


async def test_a_key_of_another_type_is_set_aside(redis_open: Open, redis_url: str) -> None:
    backend = redis_open()
    plugin = _plugin(backend)
    ids = [await backend.push(n) for n in range(3)]
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.delete(plugin.keys.task(ids[2]))
        await raw.set(plugin.keys.task(ids[2]), "not a hash")
        assert sorted(await _drain(backend)) == [0, 1]
        why = await raw.hget(plugin.keys.malformed, ids[2])
        assert why is not None and b"no hash" in why
    finally:
        await raw.aclose()
        await backend.aclose()


async def test_an_expired_lease_on_a_corrupted_record_strands_nothing(
    redis_open: Open, redis_url: str
) -> None:
    clock = ManualClock()
    backend = redis_open(clock=clock, lease_seconds=5)
    plugin = _plugin(backend)
    ids = [await backend.push(n) for n in range(3)]
    stream = backend.poll(WorkerInfo("doomed", backend.queue, concurrency=3))
    first = await anext(stream)
    assert first is not None
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.hset(plugin.keys.task(ids[1]), "x", "")
        await raw.hset(plugin.keys.task(ids[1]), "x", "nan")
        clock.advance(60)  # the worker "died": every lease lapsed
        assert await backend.resume_abandoned() == 3
        assert sorted(t.id for t in await backend.list_tasks(status=Status.PENDING)) == [
            ids[0],
            ids[2],
        ]
        why = await raw.hget(plugin.keys.malformed, ids[1])
        assert why is not None and b"max_attempts" in why
        assert await raw.zscore(plugin.keys.base + "inflight", ids[1]) is None
    finally:
        await raw.aclose()
        await stream.aclose()
        await backend.aclose()


async def test_a_listing_skips_an_unusable_record_and_shows_the_rest(
    redis_open: Open, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = redis_open()
    plugin = _plugin(backend)
    ids: list[TaskId] = [await backend.push(n) for n in range(3)]
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.hset(plugin.keys.task(ids[1]), "x", "abc")
        with caplog.at_level(logging.WARNING, logger="conveyor.redis"):
            listed = [t.id for t in await backend.list_tasks()]
        assert listed == [ids[0], ids[2]]
        assert any(ids[1] in r.getMessage() for r in caplog.records)
        with pytest.raises(ConveyorError, match=f"task {ids[1]} .* unusable record"):
            await backend.fetch_by_id(ids[1])
    finally:
        await raw.aclose()
        await backend.aclose()


async def test_an_ack_checks_the_fields_its_outcome_uses(redis_open: Open, redis_url: str) -> None:
    # Corrupted while held: a done ack, which only moves the task between sets,
    # finishes it; a retry, which would enqueue it again, is refused and changes
    # nothing; a record without its queue key refuses even a done ack, untouched.
    backend = redis_open()
    plugin = _plugin(backend)
    ids = [await backend.push(n) for n in range(3)]
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=3))
    held = {t.id: t for t in [await anext(stream) for _ in range(3)] if t is not None}
    raw = aioredis.Redis.from_url(redis_url)
    inflight = plugin.keys.base + "inflight"
    try:
        for task_id in ids[:2]:
            await raw.hset(plugin.keys.task(task_id), "x", "abc")
        await raw.hdel(plugin.keys.task(ids[2]), "qk")
        await backend.hooks.ack(held[ids[0]], Done(None))
        with pytest.raises(ConveyorError, match=r"unusable record.*max_attempts"):
            await backend.hooks.ack(held[ids[1]], Retry(datetime.now(UTC), "again"))
        with pytest.raises(ConveyorError, match=r"unusable record.*qk"):
            await backend.hooks.ack(held[ids[2]], Done(None))
        done = await raw.hgetall(plugin.keys.task(ids[0]))
        assert done[b"s"] == b"Done" and b"tok" not in done
        assert await raw.zscore(inflight, ids[0]) is None
        stem = plugin.keys.queue(backend.queue)
        assert await raw.zrange(stem + "s:Done", 0, -1) == [ids[0].encode()]
        for task_id in ids[1:]:
            record = await raw.hgetall(plugin.keys.task(task_id))
            assert record[b"s"] == b"Running" and b"tok" in record
            assert await raw.zscore(inflight, task_id) is not None
    finally:
        await raw.aclose()
        await stream.aclose()
        await backend.aclose()

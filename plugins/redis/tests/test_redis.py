"""Redis-specific behaviour, against a real server (see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import pytest
import redis.asyncio as aioredis
from conveyor_redis import RedisBackend, RedisConfig
from conveyor_redis.keys import Keys

import conveyor
from conveyor import (
    Backend,
    BackendUnavailable,
    ConfigError,
    ConveyorError,
    Done,
    Kill,
    Retry,
    Status,
    WorkerInfo,
)

Open = Callable[..., Backend]


def test_url_maps_to_config() -> None:
    backend = conveyor.open("redis://127.0.0.1:1/3?queue=mail&prefix=app&lease_seconds=5")
    assert isinstance(backend.plugin, RedisBackend)
    config = backend.plugin.config
    assert config.url == "redis://127.0.0.1:1/3"
    assert (config.queue, config.prefix, config.lease_seconds) == ("mail", "app", 5.0)
    assert backend.queue == "mail"
    tls = conveyor.open("rediss://example.invalid:6380/0")
    assert tls.plugin.config.url == "rediss://example.invalid:6380/0"  # type: ignore[attr-defined]


def test_bad_config_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="colour"):
        conveyor.open("redis://127.0.0.1:1/0?colour=blue")
    with pytest.raises(ConfigError, match="prefix"):
        conveyor.open("redis://127.0.0.1:1/0", prefix="has space")
    with pytest.raises(ConfigError, match="lease_seconds"):
        conveyor.open("redis://127.0.0.1:1/0?lease_seconds=0")


async def test_a_push_that_fails_raises_a_clear_error() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused.
    backend = conveyor.open("redis://127.0.0.1:1/0", connect_timeout=0.5)
    with pytest.raises(BackendUnavailable, match=r"redis 127.0.0.1:1/0 is unreachable.*push of 1"):
        await backend.push("lost?")
    await backend.aclose()


async def test_queue_names_are_data_not_key_syntax(redis_open: Open) -> None:
    plain = redis_open(queue="a")
    tricky = plain.make_shared("a:*{x}[1]?\\")
    await plain.push("plain")
    await tricky.push("tricky")
    first = await anext(aiter(tricky.poll(WorkerInfo("w", tricky.queue))))
    assert first is not None and first.queue == "a:*{x}[1]?\\"
    assert plain.codec.decode(first.args) == "tricky"
    names = {q.name for q in await plain.list_queues()}
    assert names == {"a", "a:*{x}[1]?\\"}
    await tricky.aclose()
    await plain.aclose()


async def test_scan_pattern_escapes_glob_characters(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("globtest1:x", 1)
        await client.set("globtest[1]:x", 1)
        found = [k async for k in client.scan_iter(match=Keys("globtest[1]").scan_pattern())]
        assert found == [b"globtest[1]:x"]
    finally:
        await client.delete("globtest1:x", "globtest[1]:x")
        await client.aclose()


async def test_priorities_use_the_whole_64_bit_range(redis_open: Open) -> None:
    backend = redis_open()
    low = await backend.push("low", priority=-(2**63))
    high = await backend.push("high", priority=2**63 - 1)
    mid = [await backend.push(i, priority=2**53 + 1) for i in range(3)]
    mid_lower = await backend.push("mid-1", priority=2**53)
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=10))
    order = [(await anext(stream)).id for _ in range(6)]  # type: ignore[union-attr]
    await stream.aclose()
    assert order == [high, *mid, mid_lower, low]
    with pytest.raises(ConveyorError, match="64-bit"):
        await backend.push("too high", priority=2**63)
    await backend.aclose()


async def test_make_shared_shares_the_pool(redis_open: Open) -> None:
    mail = redis_open(queue="mail")
    sms = mail.make_shared("sms")
    assert sms.plugin.connection is mail.plugin.connection  # type: ignore[attr-defined]
    await sms.push("text")
    await mail.aclose()  # the other queue keeps the pool open
    assert [t.args for t in await sms.list_tasks()] == ["text"]
    assert await mail.plugin.connection.client.ping()  # type: ignore[attr-defined]
    await sms.aclose()


async def test_claim_takes_up_to_the_free_slots_and_releases_the_unstarted(
    redis_open: Open,
) -> None:
    backend = redis_open()
    ids = [await backend.push(i) for i in range(5)]
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=3))
    first = await anext(stream)
    assert first is not None and first.id == ids[0]
    # One round trip claimed three (the worker's slots), not all five.
    running = [t.id for t in await backend.list_tasks(status=Status.RUNNING)]
    assert sorted(running) == ids[:3]
    await stream.aclose()  # two claimed ahead were never started: handed back unrun
    assert [t.id for t in await backend.list_tasks(status=Status.RUNNING)] == [ids[0]]
    again = await backend.fetch_by_id(ids[1])
    assert again is not None and again.status is Status.PENDING and again.attempt == 0
    await backend.aclose()


async def test_an_idle_poll_blocks_on_the_server_and_wakes_on_push(
    redis_open: Open, redis_url: str
) -> None:
    backend = redis_open(idle_wait=30.0)
    stream = backend.poll(WorkerInfo("idle-worker", backend.queue))
    assert await anext(stream) is None  # the first answer comes at once
    waiting = asyncio.ensure_future(anext(stream))
    observer = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(200):
            clients = await observer.client_list()
            if any(c["cmd"] == "blpop" and "b" in c["flags"] for c in clients):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the idle poll is not blocked in BLPOP on the server")
        pusher = redis_open()
        task_id = await pusher.push("wake up")
        task = await waiting
        assert task is not None and task.id == task_id
        await pusher.aclose()
    finally:
        await observer.aclose()
        await stream.aclose()
        await backend.aclose()


async def test_an_ack_resent_after_a_lost_reply_is_accepted_once(redis_open: Open) -> None:
    backend = redis_open()
    plugin = backend.plugin
    assert isinstance(plugin, RedisBackend)
    await backend.push("x")
    stream = backend.poll(WorkerInfo("w", backend.queue))
    task = await anext(stream)
    assert task is not None
    await stream.aclose()
    await backend.hooks.ack(task, Done(b"1"))
    base, now = plugin.keys.base, plugin._now()
    args = (task.id, task.lease_token, "done", b"1", 0, "1")
    # The same ack marked as resent (its first reply lost) is recognised as applied ...
    assert (await plugin.pipeline.script("ack", base, now, "1", *args))[0] == b"ok"
    # ... while sent as new it is a second ack, refused as stale.
    assert (await plugin.pipeline.script("ack", base, now, "0", *args))[0] == b"stale"
    await backend.aclose()


def test_config_clock_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RedisConfig("redis://127.0.0.1:1/0", "q", "p", 1.0, 1.0, 1, 1.0, 1.0, object())  # type: ignore[call-arg,misc]


async def test_an_idle_wait_cancelled_claims_nothing_and_leaves_no_blocked_client(
    redis_open: Open, redis_url: str
) -> None:
    backend = redis_open(idle_wait=30.0)
    plugin = backend.plugin
    assert isinstance(plugin, RedisBackend)
    stream = backend.poll(WorkerInfo("pausing", backend.queue))
    assert await anext(stream) is None
    waiting = asyncio.ensure_future(anext(stream))
    observer = aioredis.Redis.from_url(redis_url)

    async def blocked() -> int:
        clients = await observer.client_list()
        return sum(c["cmd"] == "blpop" and "b" in c["flags"] for c in clients)

    try:
        for _ in range(200):
            if await blocked():
                break
            await asyncio.sleep(0.01)
        waiting.cancel()  # a pause or a stop
        with pytest.raises(asyncio.CancelledError):
            await waiting
        for _ in range(200):  # the wait is ended on the server, not left to its 30 s
            if not await blocked():
                break
            await asyncio.sleep(0.01)
        assert await blocked() == 0
        task_id = await backend.push("after the pause")
        await asyncio.sleep(0.2)  # room for a wait left behind to claim it (none must)
        task = await backend.fetch_by_id(task_id)
        assert task is not None and task.status is Status.PENDING and task.attempt == 0
        # Unparked: no registration left for a push to hand a task to.
        assert await observer.exists(plugin.keys.parked(backend.queue)) == 0
        assert await observer.exists(plugin.keys.hand(backend.queue, "pausing")) == 0
    finally:
        await observer.aclose()
        await backend.aclose()


async def test_a_claim_of_thousands_holds_every_task_it_takes(
    redis_open: Open, redis_url: str
) -> None:
    # The claim writes the lease set, the worker's held set and the status indexes
    # once per claim, in slices: a claim bigger than a slice, from both ready
    # statuses, must leave each task in exactly the structures of a held one.
    backend = redis_open()
    plugin = backend.plugin
    assert isinstance(plugin, RedisBackend)
    failed_id = await backend.push("fails once")
    first = backend.poll(WorkerInfo("w0", backend.queue))
    task = await anext(first)
    assert task is not None and task.id == failed_id
    await backend.hooks.ack(task, Retry(datetime.now(UTC), "once"))
    await first.aclose()
    await backend.push_many(range(2499))
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=2500))
    held = [await anext(stream)]
    raw = aioredis.Redis.from_url(redis_url)
    try:
        keys, queue = plugin.keys, backend.queue
        assert await raw.zcard(keys.queue_status(queue, Status.RUNNING)) == 2500
        for status in (Status.PENDING, Status.FAILED):
            assert await raw.zcard(keys.queue_status(queue, status)) == 0
        assert await raw.zcard(keys.base + "inflight") == 2500
        assert await raw.scard(keys.held("w")) == 2500
        held += [await anext(stream) for _ in range(2499)]
        assert failed_id in {t.id for t in held if t is not None}
    finally:
        await raw.aclose()
        await stream.aclose()
        await backend.aclose()


async def test_a_finished_task_leaves_its_holders_sets(redis_open: Open, redis_url: str) -> None:
    backend = redis_open()
    plugin = backend.plugin
    assert isinstance(plugin, RedisBackend)
    ids = [await backend.push(n) for n in range(2)]
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=2))
    held = [await anext(stream) for _ in ids]
    raw = aioredis.Redis.from_url(redis_url)
    try:
        assert await raw.scard(plugin.keys.held("w")) == 2
        for task, outcome in zip(held, (Done(None), Kill("enough")), strict=True):
            assert task is not None
            await backend.hooks.ack(task, outcome)
        assert await raw.scard(plugin.keys.held("w")) == 0
        assert await raw.zcard(plugin.keys.base + "inflight") == 0
    finally:
        await raw.aclose()
        await stream.aclose()
        await backend.aclose()


async def test_a_result_left_on_a_waiting_task_is_gone_once_claimed(redis_open: Open) -> None:
    backend = redis_open()
    task_id = await backend.push("x")
    stored = await backend.hooks.fetch_by_id(task_id)
    assert stored is not None
    await backend.hooks.update(attrs.evolve(stored, result=b"stale"))
    again = await backend.hooks.fetch_by_id(task_id)
    assert again is not None and again.result == b"stale"
    stream = backend.poll(WorkerInfo("w", backend.queue))
    claimed = await anext(stream)
    assert claimed is not None and claimed.id == task_id
    running = await backend.hooks.fetch_by_id(task_id)
    assert running is not None and running.status is Status.RUNNING and running.result is None
    await stream.aclose()
    await backend.aclose()

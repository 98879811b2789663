"""The pipelined connection every script call goes over, against a real server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import redis.asyncio as aioredis
from conveyor_redis import RedisBackend
from conveyor_redis.pipelining import AutoPipeline, pack
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

import conveyor
from conveyor import (
    Backend,
    BackendClosed,
    ConveyorError,
    Retry,
    Status,
    Task,
    TaskId,
    WorkerInfo,
)

Open = Callable[..., Backend]


def _plugin(backend: Backend) -> RedisBackend:
    assert isinstance(backend.plugin, RedisBackend)
    return backend.plugin


async def _connections_received(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("stats")
        return int(stats["total_connections_received"])
    finally:
        await client.aclose()


async def test_concurrent_pushes_share_one_connection(redis_open: Open, redis_url: str) -> None:
    backend = redis_open()
    await backend.push("warm-up")  # the pipelined connection is made here
    before = await _connections_received(redis_url)
    ids = await asyncio.gather(*(backend.push(i) for i in range(300)))
    after = await _connections_received(redis_url)
    # 300 callers at once, one connection: the pooled client would have opened dozens.
    assert after - before == 1  # the one made by _connections_received itself
    assert len(set(ids)) == 300
    listed = [await backend.list_tasks(page=page, page_size=100) for page in range(1, 5)]
    assert {t.id for page in listed for t in page} == {*ids, listed[0][0].id}
    await backend.aclose()


async def test_every_reply_reaches_its_own_caller(redis_open: Open) -> None:
    backend = redis_open()
    pipeline = _plugin(backend).pipeline
    loop = asyncio.get_running_loop()
    rng = random.Random(7)

    async def echo(i: int) -> bytes:
        await asyncio.sleep(rng.random() / 500)
        reply: bytes = await pipeline.execute("ECHO", f"n{i}")
        return reply

    outcomes: set[str] = set()
    for _ in range(10):
        calls = {i: asyncio.ensure_future(echo(i)) for i in range(200)}
        # Cancellations land anywhere: asleep, queued, or reading a batch as its leader.
        for i in rng.sample(sorted(calls), 40):
            loop.call_later(rng.random() / 250, calls[i].cancel)
        results = await asyncio.gather(*calls.values(), return_exceptions=True)
        for i, result in zip(calls, results, strict=True):
            outcomes.add(type(result).__name__)
            if isinstance(result, bytes):
                assert result == f"n{i}".encode(), "a reply reached another caller"
            else:
                # Cancelled, or in a batch whose reading leader was cancelled: failed as a
                # dropped connection (callers resend), never given another caller's reply.
                assert isinstance(result, asyncio.CancelledError | RedisConnectionError), result
    assert "bytes" in outcomes and "CancelledError" in outcomes
    # The connection is usable afterwards and in step.
    assert await pipeline.execute("ECHO", "after") == b"after"
    await backend.aclose()


async def test_scripts_are_loaded_again_after_a_flush(redis_open: Open, redis_url: str) -> None:
    backend = redis_open()
    first = await backend.push("before")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.script_flush()
    finally:
        await admin.aclose()
    second, third = await asyncio.gather(backend.push("after"), backend.push("after too"))
    listed = {t.id: t.args for t in await backend.list_tasks(page_size=10)}
    assert listed == {first: "before", second: "after", third: "after too"}
    await backend.aclose()


async def test_a_server_that_stops_answering_fails_the_call_then_recovers(
    redis_server: Any, redis_open: Open
) -> None:
    if redis_server is None or redis_server.process is None:
        pytest.skip("needs the session's own redis-server (CONVEYOR_REDIS_URL names another)")
    backend = redis_open(socket_timeout=0.3)
    await backend.push("reachable")
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ConveyorError, match="push of 1 task"):
            await asyncio.wait_for(backend.push("unanswered"), 20)
        # Four tries of 0.3 s each plus short backoffs, not a hang.
        assert time.monotonic() - started < 10
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    after = await backend.push("answered again")
    assert (await backend.fetch_by_id(after)) is not None
    await backend.aclose()


async def test_claimed_tasks_keep_awkward_bytes(redis_open: Open) -> None:
    backend = redis_open()
    awkward = b"\x00 \n\n \xff\xfe line\r\nend "
    task = Task(TaskId.new(), awkward, queue=backend.queue, meta={"k": "v \n ü"})
    await backend.hooks.push([task])
    stream = backend.poll(WorkerInfo("w", backend.queue))
    first = await anext(stream)
    assert first is not None
    assert (first.args, dict(first.meta), first.last_error) == (awkward, {"k": "v \n ü"}, None)
    error = "line one\nline two \xfc \u2603 "
    await backend.hooks.ack(first, Retry(backend.now(), error))
    again = await anext(stream)
    assert again is not None and again.id == task.id
    assert (again.args, again.last_error, again.attempt) == (awkward, error, 2)
    await stream.aclose()
    await backend.aclose()


async def test_close_fails_queued_and_later_callers(redis_open: Open) -> None:
    backend = redis_open()
    pipeline = _plugin(backend).pipeline
    await pipeline.execute("PING")
    calls = [asyncio.ensure_future(pipeline.execute("ECHO", str(i))) for i in range(50)]
    await asyncio.sleep(0)
    await pipeline.close()
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, result in enumerate(results):
        # Answered before the close, or failed: in flight, as a dropped connection
        # (a backend's resend then meets BackendClosed); still queued, as closed.
        assert result == str(i).encode() or isinstance(
            result, BackendClosed | RedisConnectionError
        ), result
    assert any(isinstance(r, BackendClosed) for r in results)
    with pytest.raises(BackendClosed):
        await pipeline.execute("PING")
    await backend.aclose()


async def test_close_right_after_a_batch_leaves_nothing_waiting(redis_open: Open) -> None:
    # A leader's batch ends, a drainer is made for what queued meanwhile, and close()
    # comes before the drainer ever ran: the queued caller is failed, not left waiting.
    backend = redis_open()
    pipeline = _plugin(backend).pipeline
    queued: list[asyncio.Future[Any]] = []

    async def leader() -> None:
        await pipeline.execute("PING")
        await pipeline.close()

    async def follower() -> None:
        await asyncio.sleep(0)
        queued.append(asyncio.ensure_future(pipeline.execute("ECHO", "queued")))

    await asyncio.gather(leader(), follower())
    [result] = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 5)
    assert result == b"queued" or isinstance(result, BackendClosed), result
    await backend.aclose()


def test_one_pipeline_serves_one_event_loop_after_another(redis_url: str) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url)
    pipeline = AutoPipeline(pool, "return 1", 0.5)

    async def first() -> bytes:
        reply: bytes = await pipeline.execute("ECHO", "first loop")
        return reply

    async def second() -> float:
        started = time.monotonic()
        # BLPOP 0 on an empty key is never answered: the watchdog must fire in this
        # loop too, and the connection left by the first loop must not be reused.
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(pipeline.execute("BLPOP", "conveyor-test-never", 0), 5)
        assert await pipeline.execute("ECHO", "second loop") == b"second loop"
        return time.monotonic() - started

    assert asyncio.run(first()) == b"first loop"
    assert asyncio.run(second()) < 4


async def test_an_outside_cancel_is_not_lost_to_the_watchdog(redis_open: Open) -> None:
    # Both the watchdog and a caller's own cancel fall due during one stall of the
    # event loop: the caller must see its cancellation, not a Redis timeout.
    backend = redis_open(socket_timeout=0.3)
    pipeline = _plugin(backend).pipeline
    await pipeline.execute("PING")
    errors: list[str] = []

    async def poller() -> None:
        for _ in range(3):
            try:
                await pipeline.execute("BLPOP", "conveyor-test-never", 0)
            except RedisError as exc:
                errors.append(type(exc).__name__)

    task = asyncio.ensure_future(poller())
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().call_later(0.2, task.cancel)
    time.sleep(0.5)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert errors == []
    await backend.aclose()


async def test_an_error_while_connecting_fails_every_caller(redis_url: str) -> None:
    backend = conveyor.open(redis_url.rsplit("/", 1)[0] + "/99")  # no such database
    pushes = [backend.push(i) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*pushes, return_exceptions=True), 10)
    for result in results:
        assert isinstance(result, ConveyorError) and "DB index" in str(result), result
    await backend.aclose()


async def test_a_poll_cancelled_mid_claim_hands_the_tasks_back(redis_open: Open) -> None:
    backend = redis_open()
    pipeline = _plugin(backend).pipeline
    task_id = await backend.push("job", max_attempts=1)
    stream = backend.poll(WorkerInfo("w1", backend.queue))
    ahead = asyncio.ensure_future(pipeline.execute("PING"))  # a batch in flight
    await asyncio.sleep(0)
    poll = asyncio.ensure_future(anext(stream))  # its claim queues behind it
    await asyncio.sleep(0)
    poll.cancel()  # a worker shutting down
    await asyncio.gather(ahead, poll, return_exceptions=True)
    for _ in range(100):
        task = await backend.fetch_by_id(task_id)
        if task is not None and task.status is Status.PENDING:
            break
        await asyncio.sleep(0.02)
    assert task is not None
    assert (task.status, task.attempt, task.lock_by) == (Status.PENDING, 0, None)
    await backend.aclose()


async def test_a_prefix_in_the_earlier_layout_is_refused(redis_open: Open, redis_url: str) -> None:
    backend = redis_open()
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.set(_plugin(backend).keys.base + "seq", 12)  # the earlier FIFO counter
        with pytest.raises(ConveyorError, match="earlier conveyor-redis"):
            await backend.push("would be stranded")
    finally:
        await admin.aclose()
    await backend.aclose()


def test_pack_writes_the_protocol_and_refuses_other_types() -> None:
    assert (
        pack(("SET", "k", b"v\r\n", 12))
        == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n"
    )
    with pytest.raises(TypeError, match="float"):
        pack(("SET", "k", 1.5))
    with pytest.raises(TypeError, match="bool"):
        pack(("SET", "k", True))


def test_timeout_is_the_configured_socket_timeout(redis_open: Open) -> None:
    backend = redis_open(socket_timeout=2.5)
    pipeline = _plugin(backend).pipeline
    assert isinstance(pipeline, AutoPipeline) and pipeline.timeout == 2.5


async def test_acks_queued_behind_a_batch_go_as_one_call_each_with_its_own_reply(
    redis_open: Open, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = redis_open()
    plugin = _plugin(backend)
    ids = [await backend.push(n) for n in range(4)]
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=4))
    held = {t.id: t for t in [await anext(stream) for _ in ids] if t is not None}
    alone, stale, broken, fine = (held[i] for i in ids)
    stale = attrs.evolve(stale, lease_token="not-the-lease")
    raw = aioredis.Redis.from_url(redis_url)
    # A holder's set that is not a set: that ack fails on the server part-way.
    bogus = plugin.keys.base + "bogus"
    await raw.set(bogus, "x")
    await raw.hset(plugin.keys.task(broken.id), "hk", bogus)
    ops: list[str] = []
    build = plugin.pipeline._script_command

    def spy(op: str, base: str, args: Any) -> bytes:
        ops.append(op)
        return build(op, base, args)

    monkeypatch.setattr(plugin.pipeline, "_script_command", spy)
    try:
        # The first goes out at once; the others queue behind it and share a call.
        results = await asyncio.gather(
            *(backend.hooks.ack(t, conveyor.Done(None)) for t in (alone, stale, broken, fine)),
            return_exceptions=True,
        )
        assert ops == ["ack", "acks"]
        assert results[0] is None and results[3] is None
        assert isinstance(results[1], conveyor.StaleLease)
        assert isinstance(results[2], ConveyorError) and "WRONGTYPE" in str(results[2])
        for task_id, status in zip(ids, ("Done", "Running", "Running", "Done"), strict=True):
            assert await raw.hget(plugin.keys.task(task_id), "s") == status.encode()
    finally:
        await raw.aclose()
        await stream.aclose()
        await backend.aclose()

"""The pipelined connection every script call goes over, against a real server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from conveyor_redis import RedisBackend
from conveyor_redis.pipelining import AutoPipeline, pack
from redis.exceptions import ConnectionError as RedisConnectionError

from conveyor import Backend, ConveyorError, Retry, Task, TaskId, WorkerInfo

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


async def test_close_fails_queued_callers_instead_of_leaving_them(redis_open: Open) -> None:
    backend = redis_open()
    pipeline = _plugin(backend).pipeline
    await pipeline.execute("PING")
    calls = [asyncio.ensure_future(pipeline.execute("ECHO", str(i))) for i in range(50)]
    await asyncio.sleep(0)
    await pipeline.close()
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, result in enumerate(results):
        # Answered before the close, or told it was closed: never left waiting.
        assert result == str(i).encode() or isinstance(result, RedisConnectionError), result
    assert await pipeline.execute("ECHO", "reopened") == b"reopened"
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

"""The hand-off: a push of one due task claims it for a parked worker and hands it over.

A worker's lease on a task handed to it counts from the end of its longest wait
(``lease_seconds + idle_wait`` past the park), one claimed after a wait ended
(woken by a wake token, timed out) from that claim (``lease_seconds``): with a
``ManualClock`` that tells exactly which way a task reached the worker.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis.asyncio as aioredis
from conveyor_redis.backend import RedisBackend

import conveyor
from conveyor import Backend, Done, ManualClock, StaleLease, Status, Task, WorkerInfo
from conveyor.testing.chaos import Workers

Open = Callable[..., Backend]

T0 = 1_800_000_000.0
LEASE = 30.0
IDLE = 20.0
HANDED = timedelta(seconds=LEASE + IDLE)
"""How far past the park a handed task's lease runs."""
CLAIMED = timedelta(seconds=LEASE)
"""How far past the claim a task claimed after the wait's end runs."""


def plugin_of(backend: Backend) -> RedisBackend:
    plugin = backend.plugin
    assert isinstance(plugin, RedisBackend)
    return plugin


@pytest.fixture
async def observer(redis_url: str) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def register(plugin: RedisBackend, queue: str, worker: str, wait_us: int) -> tuple[Any, ...]:
    """Park ``worker`` on ``queue`` by the park script alone, as a worker that never reads
    its hand list would (one that died, or whose wait ended just before a push landed);
    return the unpark script's arguments (its last one the registration)."""
    keys, until = plugin.keys, plugin._now() + wait_us
    reg = f"tok1 {until} {until} {worker} {worker}"
    args = (keys.queue(queue), worker, keys.held(worker), until, keys.hand(queue, worker), reg)
    assert await plugin.pipeline.script("park", keys.base, plugin._now(), "0", *args, "tok1") == b""
    return args


async def parked(observer: Any, backend: Backend, n: int = 1) -> None:
    """Wait until ``n`` workers are registered on the backend's queue."""
    key = plugin_of(backend).keys.parked(backend.queue)
    for _ in range(300):
        if await observer.llen(key) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} worker(s) never parked on {key}")


class Parked:
    """A poll stream of worker ``name``, idle and parked, its next task awaited."""

    def __init__(self, backend: Backend, name: str, concurrency: int = 1) -> None:
        self.worker = WorkerInfo(name, backend.queue, concurrency=concurrency)
        self.stream = backend.poll(self.worker)
        self.next: asyncio.Future[Task[bytes] | None] | None = None

    async def park(self) -> None:
        assert await anext(self.stream) is None
        self.next = asyncio.ensure_future(anext(self.stream))

    async def task(self) -> Task[bytes]:
        assert self.next is not None
        got = await asyncio.wait_for(self.next, 5)
        assert got is not None
        return got

    async def close(self) -> None:
        if self.next is not None and not self.next.done():
            self.next.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self.next
        else:
            await self.stream.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def backend(redis_open: Open, clock: ManualClock) -> Backend:
    return redis_open(clock=clock, lease_seconds=LEASE, idle_wait=IDLE)


async def test_a_parked_worker_is_handed_the_pushed_task_claimed(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    task_id = await backend.push("hello")
    task = await worker.task()
    assert task.id == task_id and task.args == b'"hello"'
    assert task.status is Status.RUNNING and task.attempt == 1 and task.lock_by == "w"
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and stored.status is Status.RUNNING
    assert stored.lease_token == task.lease_token and stored.attempt == 1
    assert stored.lease_until == clock.now() + HANDED, "claimed by the push, not after a wake"
    assert [t.id for t in await backend.list_tasks(status=Status.RUNNING)] == [task_id]
    assert await backend.list_tasks(status=Status.PENDING) == []
    keys = plugin_of(backend).keys
    # Held as a claim holds it: the lease sweep and the worker's heartbeat see it.
    assert await observer.smembers(keys.held("w")) == {task_id.encode()}
    assert await observer.zscore(f"{keys.prefix}:inflight", task_id) is not None
    assert await observer.llen(keys.parked(backend.queue)) == 0  # its registration used up
    assert await observer.llen(keys.wake(backend.queue)) == 0  # and no wake token added
    assert await observer.llen(keys.hand(backend.queue, "w")) == 0  # taken
    await worker.close()
    await backend.aclose()


async def test_the_handed_token_acks_and_no_other_does(backend: Backend, observer: Any) -> None:
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    task_id = await backend.push("x", name="named", meta={"k": 1})
    task = await worker.task()
    assert task.name == "named" and task.meta == {"k": 1}
    with pytest.raises(StaleLease):
        await backend.hooks.ack(attrs.evolve(task, lease_token="forged"), Done(b"1"))
    with pytest.raises(StaleLease):
        await backend.hooks.ack(attrs.evolve(task, lock_by="other", lease_token=None), Done(b"1"))
    await backend.hooks.ack(task, Done(b"2"))
    done = await backend.fetch_by_id(task_id)
    assert done is not None and done.status is Status.DONE and done.result == 2
    with pytest.raises(StaleLease):  # the same token once more: the attempt is over
        await backend.hooks.ack(task, Done(b"3"))
    await worker.close()
    await backend.aclose()


async def test_two_parked_workers_each_get_one_of_two_pushes(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    first, second = Parked(backend, "w1"), Parked(backend, "w2")
    await first.park()
    await parked(observer, backend, 1)
    await second.park()
    await parked(observer, backend, 2)
    a = await backend.push("a")
    b = await backend.push("b")
    got = {(await first.task()).id: "w1", (await second.task()).id: "w2"}
    assert got == {a: "w1", b: "w2"}, "the longest parked is handed the first push"
    for task_id, name in got.items():
        stored = await backend.fetch_by_id(task_id)
        assert stored is not None and stored.lock_by == name
        assert stored.lease_until == clock.now() + HANDED
    await first.close()
    await second.close()
    await backend.aclose()


async def test_a_push_of_several_wakes_the_worker_rather_than_hand_off(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    ids = await backend.push_many(["a", "b"])
    task = await worker.task()
    assert task.id == ids[0]
    assert task.lease_until == clock.now() + CLAIMED, "claimed after the wake, not handed"
    keys = plugin_of(backend).keys
    assert await observer.llen(keys.parked(backend.queue)) == 0  # unparked on waking
    second = await backend.fetch_by_id(ids[1])
    assert second is not None and second.status is Status.PENDING
    await worker.close()
    await backend.aclose()


async def test_a_delayed_push_is_not_handed_off(backend: Backend, observer: Any) -> None:
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    task_id = await backend.push("later", delay=5)
    await asyncio.sleep(0.1)
    assert worker.next is not None and not worker.next.done()
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and stored.status is Status.PENDING
    assert await observer.llen(plugin_of(backend).keys.parked(backend.queue)) == 1
    await worker.close()
    await backend.aclose()


async def test_a_task_due_already_goes_before_a_push_handed_nothing(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    # A delayed task come due is ready to the claim though not yet in a due set:
    # the push must not jump it by handing itself to the parked worker.
    earlier = await backend.push("earlier", delay=10)
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    clock.advance(10)
    later = await backend.push("later")
    task = await worker.task()
    assert task.id == earlier
    stored = await backend.fetch_by_id(later)
    assert stored is not None and stored.status is Status.PENDING
    await worker.close()
    await backend.aclose()


async def test_a_registration_whose_wait_is_over_is_dropped(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    clock.advance(IDLE + 1)  # past its deadline: a wait over, as a dead worker's is
    task_id = await backend.push("x")
    task = await worker.task()  # still reached, by the wake token
    assert task.id == task_id and task.lease_until == clock.now() + CLAIMED
    assert await observer.llen(plugin_of(backend).keys.parked(backend.queue)) == 0
    await worker.close()
    await backend.aclose()


async def test_unpark_gives_back_a_task_handed_but_not_taken_in_its_place(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    # A push landing after the worker's wait ended, before it took its registration
    # off: the worker never sees the task, which goes back where it was in line.
    plugin = plugin_of(backend)
    keys, queue = plugin.keys, backend.queue
    args = await register(plugin, queue, "gone", 10**9)
    hand, held = keys.hand(queue, "gone"), keys.held("gone")
    first = await backend.push("first")  # handed to the registration: nobody takes it
    handed = await backend.fetch_by_id(first)
    assert handed is not None and handed.status is Status.RUNNING and handed.lock_by == "gone"
    assert await observer.llen(hand) == 1
    second = await backend.push("second")
    assert await plugin.pipeline.script("unpark", keys.base, plugin._now(), "0", *args) == b"-"
    back = await backend.fetch_by_id(first)
    assert back is not None and back.status is Status.PENDING and back.attempt == 0
    assert back.lock_by is None and back.lease_token is None
    assert await observer.exists(hand) == 0
    assert await observer.smembers(held) == set()
    stream = backend.poll(WorkerInfo("w", queue, concurrency=2))
    assert [(await anext(stream)).id, (await anext(stream)).id] == [first, second]  # type: ignore[union-attr]
    await stream.aclose()
    await backend.aclose()


async def test_a_cancelled_wait_leaves_no_registration_and_loses_no_push(
    backend: Backend, observer: Any
) -> None:
    keys = plugin_of(backend).keys
    for round_ in range(5):
        worker = Parked(backend, "w")
        await worker.park()
        await parked(observer, backend)
        assert worker.next is not None
        worker.next.cancel()
        # Pushed while the wait is being ended: handed or not, it must come back.
        task_id = await backend.push(round_)
        with pytest.raises(asyncio.CancelledError):
            await worker.next
        for _ in range(200):
            stored = await backend.fetch_by_id(task_id)
            assert stored is not None
            if stored.status is Status.PENDING and not await observer.exists(
                keys.parked(backend.queue)
            ):
                break
            await asyncio.sleep(0.01)
        assert stored.status is Status.PENDING and stored.attempt == 0
        assert await observer.exists(keys.hand(backend.queue, "w")) == 0
        stream = backend.poll(WorkerInfo("drain", backend.queue))
        drained = await anext(stream)
        assert drained is not None and drained.id == task_id
        await backend.hooks.ack(drained, Done(None))
        await stream.aclose()
    await backend.aclose()


async def test_closing_the_backend_unparks_its_cancelled_waits(
    redis_open: Open, observer: Any
) -> None:
    backend = redis_open(idle_wait=IDLE)
    worker = Parked(backend, "w")
    await worker.park()
    await parked(observer, backend)
    keys, queue = plugin_of(backend).keys, backend.queue
    assert worker.next is not None
    worker.next.cancel()
    await backend.aclose()  # waits for the cancelled wait to take its registration off
    assert await observer.exists(keys.parked(queue)) == 0


WORKER = """
import asyncio, sys
import conveyor
from conveyor import WorkerInfo

async def main():
    backend = conveyor.open(sys.argv[1], prefix=sys.argv[2], lease_seconds=0.5, idle_wait=1.0)
    stream = backend.poll(WorkerInfo("doomed", backend.queue))
    assert await anext(stream) is None
    await anext(stream)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_task_handed_to_a_worker_that_died_comes_back_with_its_lease(
    redis_open: Open, redis_url: str, redis_prefix: str, observer: Any
) -> None:
    backend = redis_open(lease_seconds=0.5)
    proc = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, redis_prefix])
    try:
        await parked(observer, backend)
        os.kill(proc.pid, signal.SIGSTOP)  # parked, then frozen: it never reads the hand-off
        task_id = await backend.push("x")
        stored = await backend.fetch_by_id(task_id)
        assert stored is not None and stored.status is Status.RUNNING
        assert stored.lock_by == "doomed"
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    for _ in range(100):  # the lease: 0.5 s past the end of its 1 s wait
        if await backend.resume_abandoned():
            break
        await asyncio.sleep(0.05)
    back = await backend.fetch_by_id(task_id)
    assert back is not None and back.status is Status.PENDING and back.attempt == 1
    assert back.last_error is not None and "doomed" in back.last_error
    stream = backend.poll(WorkerInfo("heir", backend.queue))
    again = await anext(stream)
    assert again is not None and again.id == task_id and again.attempt == 2
    await backend.hooks.ack(again, Done(None))
    await stream.aclose()
    await backend.aclose()


async def test_giving_back_spares_a_task_its_worker_holds_again_under_a_new_lease(
    backend: Backend, clock: ManualClock, observer: Any
) -> None:
    # A hand-off nobody took, swept back by the lease sweep and claimed again by a
    # worker of the same name: the stale hand-off must not release the new attempt.
    plugin = plugin_of(backend)
    keys, queue = plugin.keys, backend.queue
    args = await register(plugin, queue, "w", 10**6)
    hand = keys.hand(queue, "w")
    task_id = await backend.push("x")
    assert await observer.llen(hand) == 1
    clock.advance(2)
    assert await backend.resume_abandoned() == 1
    stream = backend.poll(WorkerInfo("w", queue))
    again = await anext(stream)
    assert again is not None and again.id == task_id and again.attempt == 2
    await plugin.pipeline.script("unpark", keys.base, plugin._now(), "0", *args)
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and stored.status is Status.RUNNING
    assert stored.lease_token == again.lease_token and stored.attempt == 2
    await backend.hooks.ack(again, Done(None))
    await stream.aclose()
    await backend.aclose()


async def test_a_push_into_a_queue_with_tasks_ready_hands_nothing_off(
    backend: Backend, observer: Any
) -> None:
    # A worker registered while the queue was empty, a push of several since (which
    # wakes rather than hands off): the next single push must queue behind them.
    plugin = plugin_of(backend)
    keys, queue = plugin.keys, backend.queue
    reg = (await register(plugin, queue, "slow", 10**9))[-1]
    ready = await backend.push_many(["a", "b"])
    last = await backend.push("c")
    stored = await backend.fetch_by_id(last)
    assert stored is not None and stored.status is Status.PENDING
    assert await observer.lrange(keys.parked(queue), 0, -1) == [reg.encode()]  # kept, in place
    stream = backend.poll(WorkerInfo("w", queue, concurrency=3))
    assert [(await anext(stream)).id for _ in range(3)] == [*ready, last]  # type: ignore[union-attr]
    await stream.aclose()
    await backend.aclose()


async def test_workers_sigkilled_among_hand_offs_lose_nothing(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # Tasks pushed one at a time, so idle workers are handed them, while workers are
    # SIGKILLed at random (parked, or running what they were handed) and replaced.
    backend = conveyor.open(redis_url, prefix=redis_prefix)
    workers = Workers(redis_url, tmp_path, prefix=redis_prefix)
    try:
        for _ in range(3):
            workers.spawn()
        ids = []
        for n in range(200):
            ids.append(await backend.push(n, max_attempts=10))
            await asyncio.sleep(0.01)
            if n % 25 == 24:
                victim = random.choice(workers.live)
                victim.kill()
                victim.wait()
                workers.live.remove(victim)
                workers.spawn()
        results = {r.task_id: r async for r in backend.wait_for(ids, timeout=60)}
        assert all(r.status is Status.DONE for r in results.values())
        assert {r.result for r in results.values()} == set(range(200))
        assert set(workers.starts()) == set(range(200)), "every task was started"
    finally:
        workers.stop_all()
        await backend.aclose()

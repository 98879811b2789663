"""How long memory's poll and wait_for wait: the promises mutation testing found untested.

A poll with nothing ready waits for a push, the next delayed task or ``idle_wait``,
whichever is first; ``wait_for`` waits up to its timeout. Nothing here measures
speed: the waits are bounded by the suite's hang guard, and the tests count what
comes out. Each names the mutants of ``conveyor_memory.backend`` it kills.
"""

from __future__ import annotations

import asyncio

import pytest
from conveyor_memory import MemoryConfig

import conveyor
from conveyor import ConfigError, ManualClock, Status
from conveyor.outcome import Done
from conveyor.testing.support import claim, guard, worker


async def test_an_idle_poll_wakes_for_the_next_delayed_task_not_after_idle_wait() -> None:
    # Kills `due is None` and `due * now` (the poll sleeps the hour of idle_wait),
    # `due | now` (it raises), `due / now` and `due // now` (it wakes after 1 s, too
    # early, again and again), `timeout <= 1` and `timeout != 0` (it spins), and
    # `delayed[-1]` in next_due (it waits for the later task's hour).
    backend = conveyor.open("memory", idle_wait=3600.0)  # the system clock: time must pass
    task_id = await backend.push("x", delay=2.5)  # longer than the mutants' 1 s waits
    await backend.push("later", delay=3600)  # the heap's last entry, not its first
    stream = backend.poll(worker(backend))
    try:
        idle = 0
        while (item := await guard(anext(stream), "an idle poll")) is None:
            idle += 1
            # One None at once, perhaps one more if the timer fires a hair early.
            assert idle <= 2, "the poll reported idle again without waiting for the delayed task"
        assert item.id == task_id
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_wait_for_waits_within_its_timeout() -> None:
    # Kills `loop.time() % timeout` (the deadline must be now + timeout) and
    # `deadline / now`, `deadline // now` (what is left of it must be deadline - now).
    backend = conveyor.open("memory", clock=ManualClock(1_700_000_000.0))
    task_id = await backend.push("x")
    waiting = asyncio.create_task(backend.wait_one(task_id, timeout=600))
    # Finish after 2 s: well inside the timeout, past the ~1 s that `deadline / now`
    # or `deadline // now` would leave.
    await asyncio.sleep(2.0)
    assert not waiting.done(), "wait_for returned before the task finished"
    task = await claim(backend)
    assert task is not None
    await backend.hooks.ack(task, Done(backend.codec.encode("ok")))
    result = await guard(waiting, "wait_for")
    assert result.status is Status.DONE and result.result == "ok"


async def test_a_push_wakes_a_poll_that_waits_for_work() -> None:
    # Kills `if not not waiter.done()` in store.enqueue: the waiter was dropped unwoken.
    backend = conveyor.open("memory", clock=ManualClock(1_700_000_000.0), idle_wait=3600.0)
    stream = backend.poll(worker(backend))
    try:
        assert await guard(anext(stream), "the first poll") is None
        second = asyncio.ensure_future(anext(stream))
        waiters = backend.plugin.store.queue(backend.queue).waiters  # type: ignore[attr-defined]
        for _ in range(2000):  # until the poll waits (or, wrongly, returns): 20 s at most
            if waiters or second.done():
                break
            await asyncio.sleep(0.01)
        task_id = await backend.push("x")
        task = await guard(second, "a waiting poll after a push")
        assert task is not None and task.id == task_id
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def test_idle_wait_may_be_zero_but_not_negative() -> None:
    # Kills `low_open=True` for idle_wait's validator: 0 (never wait) is allowed.
    assert conveyor.open("memory://?idle_wait=0").plugin.config.idle_wait == 0.0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="idle_wait must be a number of seconds at least 0"):
        conveyor.open("memory://?idle_wait=-1")


def test_idle_wait_defaults_to_the_documented_second() -> None:
    # Kills a changed idle_wait default (plugins/memory/README.md documents 1.0).
    assert conveyor.open("memory").plugin.config.idle_wait == 1.0  # type: ignore[attr-defined]


async def test_wait_for_gives_up_after_its_timeout() -> None:
    # Kills `loop.time() * timeout`: with a timeout above 1 s that deadline never came.
    backend = conveyor.open("memory", clock=ManualClock(1_700_000_000.0))
    task_id = await backend.push("never run")
    # Not the suite's guard: it would take memory's TimeoutError for a hang. A hang ends
    # in asyncio.timeout's own TimeoutError, without memory's message.
    with pytest.raises(TimeoutError, match=r"had not finished after 1\.5 s"):
        async with asyncio.timeout(20):
            await backend.wait_one(task_id, timeout=1.5)


def test_memory_options_are_keyword_only() -> None:
    # Kills `kw_only=False` on MemoryConfig (written after the last measured run).
    with pytest.raises(TypeError):
        MemoryConfig(2.0)  # type: ignore[call-arg,arg-type]
    assert MemoryConfig(idle_wait=2.0).idle_wait == 2.0

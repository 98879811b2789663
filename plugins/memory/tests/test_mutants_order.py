"""Which delayed task comes out, and when: the promises mutation testing found untested.

Each test names the mutant of ``conveyor_memory.store`` it was written to kill
(see docs/mutation.md); all of them hold a sentence of the ``poll`` hookspec.
"""

from __future__ import annotations

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing.support import claim

START = 1_700_000_000.0  # a whole second, so run_at survives the datetime round trip exactly


def _memory() -> tuple[Backend, ManualClock]:
    clock = ManualClock(START)
    return conveyor.open("memory", clock=clock), clock


async def test_of_two_delayed_tasks_the_due_one_is_delivered_while_the_later_waits() -> None:
    # Kills `delayed[-1][0] <= now`: the heap's last entry is not its earliest.
    backend, clock = _memory()
    soon = await backend.push("soon", delay=10)
    later = await backend.push("later", delay=20)
    clock.advance(15)
    first = await claim(backend)
    assert first is not None and first.id == soon, "a due task stayed behind a later one"
    assert await claim(backend) is None, "a task was delivered before its run_at"
    clock.advance(5)
    second = await claim(backend)
    assert second is not None and second.id == later


async def test_a_delayed_task_is_ready_at_exactly_its_run_at() -> None:
    # Kills `delayed[0][0] < now`: ready means run_at <= now.
    backend, clock = _memory()
    task_id = await backend.push("x", delay=10)
    clock.advance(9.5)
    assert await claim(backend) is None
    clock.advance(0.5)
    task = await claim(backend)
    assert task is not None and task.id == task_id, "a task due exactly now was not ready"


async def test_priority_orders_tasks_that_were_delayed() -> None:
    # Kills `ready_key(not neg, seq)`: a delayed task keeps its priority once due.
    backend, clock = _memory()
    low = await backend.push("low", delay=10)
    high = await backend.push("high", delay=10, priority=5)
    clock.advance(10)
    got = [await claim(backend), await claim(backend)]
    assert [t.id for t in got if t is not None] == [high, low]

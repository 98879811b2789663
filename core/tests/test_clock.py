"""Times derived from a clock never land after the clock's own reading."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

import conveyor
from conveyor import ManualClock, WorkerInfo
from conveyor.clock import at


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_at_rounds_down_to_the_microsecond(seconds: float) -> None:
    moment = at(seconds)
    assert moment.timestamp() <= seconds
    assert seconds - moment.timestamp() < 2e-6


async def test_a_push_is_ready_at_once_under_a_stopped_fractional_clock() -> None:
    # 0.0000007 past a microsecond: nearest-microsecond rounding would stamp the
    # task a fraction in the clock's future, where a stopped clock never arrives.
    clock = ManualClock(1_800_000_000.0000007)
    async with conveyor.open("memory", clock=clock) as backend:
        task_id = await backend.push({"n": 1})
        claimed = await anext(backend.poll(WorkerInfo("w", backend.queue)))
        assert claimed is not None and claimed.id == task_id
        assert backend.now().timestamp() <= clock.time()


@given(st.floats(min_value=-4e10, max_value=2.5e11, allow_nan=False))
def test_at_is_the_floor_in_whole_microseconds_everywhere(seconds: float) -> None:
    # at() takes a float path below 2**33 s and timedelta arithmetic elsewhere: one answer.
    micros = math.floor(seconds * 1_000_000)
    if micros / 1_000_000 > seconds:
        micros -= 1
    assert at(seconds) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)

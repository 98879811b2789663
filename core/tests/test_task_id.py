"""Task ids: sortable by creation time, their own string form, strictly parsed."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor import TaskId


def test_ids_made_in_sequence_sort_in_sequence() -> None:
    ids = [TaskId.new() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_sort_by_creation_time() -> None:
    first = TaskId.new()
    time.sleep(0.002)
    second = TaskId.new()
    assert first < second
    assert first.timestamp <= second.timestamp
    assert abs(second.timestamp - time.time()) < 5


def test_string_round_trip() -> None:
    tid = TaskId.new()
    assert TaskId.parse(str(tid)) == tid
    assert TaskId.parse(str(tid).upper()) == tid
    assert isinstance(TaskId.parse(str(tid)), TaskId)


@pytest.mark.parametrize(
    "bad", ["", "nope", "0" * 25, "0" * 27, "w" * 26, "06h0a4-5i4o00161hbd8q46iv2"]
)
def test_malformed_ids_are_refused_with_the_expected_form(bad: str) -> None:
    with pytest.raises(ValueError, match="26 characters"):
        TaskId.parse(bad)


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        TaskId.parse(123)  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_parse_never_raises_anything_but_value_error(text: str) -> None:
    try:
        TaskId.parse(text)
    except ValueError:
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_a_forked_child_and_its_parent_never_make_the_same_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both sides make their ids within one millisecond, the case a clock tick would
    # otherwise hide: the clock is held still across the fork.
    from conveyor import task_id

    frozen = time.time_ns()
    monkeypatch.setattr(task_id, "_time_ns", lambda: frozen)
    before = TaskId.new()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids down the pipe, then out without pytest's teardown
        try:
            os.write(write, " ".join(TaskId.new() for _ in range(300)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = [TaskId.new() for _ in range(300)]
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode().split()
    os.waitpid(pid, 0)
    assert len(child) == 300
    assert set(child).isdisjoint(parent)
    assert min(child) > before and child == sorted(child)

"""The state several memory backends (one per queue, see ``make_shared``) share."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from conveyor import Done, Status, SystemClock, Task, TaskId
from conveyor.rules import READY_STATES, settle
from conveyor.rules.authoring import SYSTEM_CLOCK

__all__ = ["MemoryStore", "QueueState", "Record"]

Record = Task[bytes] | tuple[Task[bytes], bytes | None]
"""What ``MemoryStore.tasks`` holds per id: the task's record or, for a task a worker
finished (``Done``), ``(claimed, result)``, the record ``rules.settle`` makes of it built
when first read (``MemoryStore.get``): an ack then costs a dict write, not a record."""


class QueueState:
    """One queue: ready keys ``(-priority, run_at, id, seq)`` (``conveyor.rules.order_key``
    then the entry's sequence number) and a delayed heap of ``(run_at, -priority, id, seq)``.

    Ready keys are in two places: ``run``, a deque of keys in ascending order, takes a
    key not below its last one (pushes in the order they run, the usual case: O(1) in
    and out); ``ready``, a heap, takes the rest. The next task is the lesser of their
    heads. Entries are never removed in place; one is live only while
    ``store.entry[id]`` still equals its ``seq`` (lazy deletion).
    """

    __slots__ = ("delayed", "ready", "run", "waiters")

    def __init__(self) -> None:
        self.run: deque[tuple[int, float, TaskId, int]] = deque()
        self.ready: list[tuple[int, float, TaskId, int]] = []
        self.delayed: list[tuple[float, int, TaskId, int]] = []
        self.waiters: list[asyncio.Future[None]] = []


class MemoryStore:
    """Tasks of every queue, the queue heaps, held leases, workers and result waiters."""

    def __init__(self, clock: Any = SYSTEM_CLOCK) -> None:
        self.clock = clock
        # The system clock read without its method's frame: once per push and per claim.
        self.time: Callable[[], float] = time.time if type(clock) is SystemClock else clock.time
        self.tasks: dict[TaskId, Record] = {}
        self.queues: dict[str, QueueState] = {}
        self.entry: dict[TaskId, int] = {}
        self.held: dict[str, set[TaskId]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.finished_waiters: dict[TaskId, list[asyncio.Future[None]]] = {}
        self.seq = itertools.count()
        self.users = 0

    def queue(self, name: str) -> QueueState:
        state = self.queues.get(name)
        if state is None:
            state = self.queues[name] = QueueState()
        return state

    def get(self, task_id: TaskId) -> Task[bytes] | None:
        """The record of ``task_id`` (a finished one built now, once), or ``None``."""
        record = self.tasks.get(task_id)
        if isinstance(record, tuple):
            claimed, result = record
            record = self.tasks[task_id] = settle(claimed, claimed, Done(result))
        return record

    def states(self) -> list[tuple[Task[bytes], Status]]:
        """Every task with its status, without building finished records: for a finished
        one the claimed task stands in (same id, queue, name), with ``DONE``."""
        done = Status.DONE
        return [
            (record[0], done) if isinstance(record, tuple) else (record, record.status)
            for record in self.tasks.values()
        ]

    def save(self, task: Task[bytes]) -> None:
        """Store ``task`` and put it where its status says: in line, or out of it."""
        self.tasks[task.id] = task
        if task.status in READY_STATES:
            self.enqueue(task)
        else:
            self.entry.pop(task.id, None)
            if task.status.is_final:
                self.finished(task.id)

    def enqueue(self, task: Task[bytes]) -> None:
        """(Re)insert a ready-state task into its queue's heaps and wake a poller."""
        seq = next(self.seq)
        self.entry[task.id] = seq
        state = self.queue(task.queue)
        when = task.run_at.timestamp()
        if when <= self.time():
            key = (-task.priority, when, task.id, seq)
            run = state.run
            if not run or run[-1] < key:
                run.append(key)
            else:
                heapq.heappush(state.ready, key)
        else:
            heapq.heappush(state.delayed, (when, -task.priority, task.id, seq))
        waiters = state.waiters
        while waiters:
            waiter = waiters.pop()
            if not waiter.done():
                waiter.set_result(None)
                break

    def take(self, queue: str) -> Task[bytes] | None:
        """Remove and return the next ready task of ``queue``, or ``None``."""
        state = self.queues.get(queue)
        if state is None:
            return None
        ready, delayed, entry = state.ready, state.delayed, self.entry
        if delayed:
            now = self.time()
            while delayed and delayed[0][0] <= now:
                when, neg, tid, seq = heapq.heappop(delayed)
                heapq.heappush(ready, (neg, when, tid, seq))
        run, pop, first = state.run, heapq.heappop, state.run.popleft
        while True:
            if run and (not ready or run[0] < ready[0]):
                _, _, tid, seq = first()
            elif ready:
                _, _, tid, seq = pop(ready)
            else:
                return None
            if entry.get(tid) == seq:
                del entry[tid]
                # Only ready tasks have entries, and a finished one is never ready.
                return self.tasks[tid]  # type: ignore[return-value]

    def next_due(self, queue: str) -> float | None:
        """When the earliest delayed task of ``queue`` becomes ready."""
        state = self.queues.get(queue)
        return state.delayed[0][0] if state and state.delayed else None

    def finished(self, task_id: TaskId) -> None:
        for waiter in self.finished_waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)

"""The state several memory backends (one per queue, see ``make_shared``) share."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime
from typing import Any

from conveyor import Status, Task, TaskId
from conveyor.clock import Clock, at

__all__ = ["MemoryStore", "QueueState", "ready_key"]

_READY = (Status.PENDING, Status.FAILED)


_SEQ_BITS = 64
_SEQ_MASK = (1 << _SEQ_BITS) - 1


def ready_key(priority: int, seq: int) -> int:
    """One int ordering (-priority, seq): ints compare far faster than tuples in a heap."""
    return (-priority << _SEQ_BITS) + seq


class QueueState:
    """One queue: a ready heap of ``ready_key(priority, seq)`` ints (``ids`` maps the
    key to the task id) and a delayed heap of (run_at, -priority, seq, id).

    Heap entries are never removed in place; an entry is live only while
    ``store.entry[id]`` still equals its ``seq`` (lazy deletion).
    """

    __slots__ = ("delayed", "ids", "ready", "waiters")

    def __init__(self) -> None:
        self.ready: list[int] = []
        self.ids: dict[int, TaskId] = {}
        self.delayed: list[tuple[float, int, int, TaskId]] = []
        self.waiters: list[asyncio.Future[None]] = []


class MemoryStore:
    """Tasks of every queue, the queue heaps, held leases, workers and result waiters."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.tasks: dict[TaskId, Task[bytes]] = {}
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

    def enqueue(self, task: Task[bytes]) -> None:
        """(Re)insert a ready-state task into its queue's heaps and wake a poller."""
        seq = next(self.seq)
        self.entry[task.id] = seq
        state = self.queue(task.queue)
        when = task.run_at.timestamp()
        if when <= self.clock.time():
            key = ready_key(task.priority, seq)
            state.ids[key] = task.id
            heapq.heappush(state.ready, key)
        else:
            heapq.heappush(state.delayed, (when, -task.priority, seq, task.id))
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
        ready, ids, delayed, entry = state.ready, state.ids, state.delayed, self.entry
        if delayed:
            now = self.clock.time()
            while delayed and delayed[0][0] <= now:
                _, neg, seq, tid = heapq.heappop(delayed)
                key = ready_key(-neg, seq)
                ids[key] = tid
                heapq.heappush(ready, key)
        pop = heapq.heappop
        while ready:
            key = pop(ready)
            tid = ids.pop(key)
            if entry.get(tid) == key & _SEQ_MASK:
                del entry[tid]
                return self.tasks[tid]
        return None

    def next_due(self, queue: str) -> float | None:
        """When the earliest delayed task of ``queue`` becomes ready."""
        state = self.queues.get(queue)
        return state.delayed[0][0] if state and state.delayed else None

    def finished(self, task_id: TaskId) -> None:
        for waiter in self.finished_waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    def now(self) -> datetime:
        return at(self.clock.time())

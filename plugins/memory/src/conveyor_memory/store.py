"""The state several memory backends (one per queue, see ``make_shared``) share."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

from conveyor import Task, TaskId
from conveyor.rules import READY_STATES
from conveyor.rules.authoring import SYSTEM_CLOCK

__all__ = ["MemoryStore", "QueueState"]


class QueueState:
    """One queue: a ready heap of ``(-priority, run_at, id, seq)`` (``conveyor.rules.order_key``
    then the entry's sequence number) and a delayed heap of ``(run_at, -priority, id, seq)``.

    Heap entries are never removed in place; an entry is live only while
    ``store.entry[id]`` still equals its ``seq`` (lazy deletion).
    """

    __slots__ = ("delayed", "ready", "waiters")

    def __init__(self) -> None:
        self.ready: list[tuple[int, float, TaskId, int]] = []
        self.delayed: list[tuple[float, int, TaskId, int]] = []
        self.waiters: list[asyncio.Future[None]] = []


class MemoryStore:
    """Tasks of every queue, the queue heaps, held leases, workers and result waiters."""

    def __init__(self, clock: Any = SYSTEM_CLOCK) -> None:
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
        if when <= self.clock.time():
            heapq.heappush(state.ready, (-task.priority, when, task.id, seq))
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
            now = self.clock.time()
            while delayed and delayed[0][0] <= now:
                when, neg, tid, seq = heapq.heappop(delayed)
                heapq.heappush(ready, (neg, when, tid, seq))
        pop = heapq.heappop
        while ready:
            _, _, tid, seq = pop(ready)
            if entry.get(tid) == seq:
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

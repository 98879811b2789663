"""The in-memory index a journal replays into: tasks by id, ready and delayed heaps, leases.

Every change goes through ``State.apply(record)``, both when a record is
replayed from the file and when this process makes it, so what is in memory
is exactly what the journal says. Heap entries are never removed in place:
one is live only while its task is still ready under the same ``seq``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor import Status, Task, TaskId, WorkerInfo

__all__ = ["Entry", "State", "WorkerRecord", "to_us", "from_us", "READY", "FINAL"]

READY = frozenset({Status.PENDING, Status.FAILED})
FINAL = frozenset({Status.DONE, Status.KILLED})
_HELD = frozenset({Status.RUNNING, Status.QUEUED})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_STATUS = {s.value: s for s in Status}


def to_us(when: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, unlike a float)."""
    return (when - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """The inverse of ``to_us``."""
    return _EPOCH + timedelta(microseconds=us)


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise ValueError(f"expected a string, got {value!r}")
    return value


class Entry:
    """One task as stored; mutable so that a state change does not rebuild it."""

    __slots__ = (
        "args", "attempt", "error", "id", "lock_by", "max_attempts", "meta", "name", "priority",
        "queue", "result", "run_at", "run_at_us", "seq", "status", "token", "until",
    )  # fmt: skip

    def __init__(self, record: dict[str, Any], seq: int) -> None:
        tid, args, queue = record["id"], record["args"], record["q"]
        max_attempts, priority = record["ma"], record["p"]
        meta = record.get("meta") or {}
        name = record.get("name")
        if not (
            type(args) is bytes
            and type(queue) is str
            and type(max_attempts) is int
            and type(priority) is int
            and isinstance(meta, dict)
            and (name is None or type(name) is str)
        ):
            raise ValueError(f"a task record has a missing or mistyped field: {record!r:.200}")
        self.id = tid if type(tid) is TaskId else TaskId.parse(tid)
        self.args: bytes = args
        self.queue: str = queue
        self.max_attempts: int = max_attempts
        self.priority: int = priority
        self.meta: dict[str, Any] = meta
        self.name: str | None = name
        self.seq = seq
        self.set(record)

    def set(self, record: dict[str, Any]) -> None:
        """Take the mutable fields (status, attempt, run_at, lease, outcome) from ``record``."""
        get = record.get
        self.status = _STATUS[record["s"]]
        attempt, run_at_us = record["a"], record["at"]
        result, error, lock_by, token, until = (
            get("res"), get("err"), get("by"), get("tok"), get("until")
        )  # fmt: skip
        # One check for the common shapes; the precise complaint only when it fails.
        if not (
            type(attempt) is int
            and type(run_at_us) is int
            and (result is None or type(result) is bytes)
            and (error is None or type(error) is str)
            and (lock_by is None or type(lock_by) is str)
            and (token is None or type(token) is str)
            and (until is None or type(until) is int)
        ):
            raise ValueError(f"a field of the record has the wrong type: {record!r:.200}")
        self.attempt = attempt
        if run_at_us != getattr(self, "run_at_us", None):
            self.run_at_us = run_at_us
            self.run_at = from_us(run_at_us)
        self.result: bytes | None = result
        self.error: str | None = error
        self.lock_by: str | None = lock_by
        self.token: str | None = token
        self.until: int | None = until

    def task(self) -> Task[bytes]:
        """The task as hooks hand it out."""
        until = None if self.until is None else from_us(self.until)
        return Task(
            self.id, self.args, self.queue, self.status, self.attempt, self.max_attempts,
            self.run_at, self.priority, self.result, self.error, self.lock_by, self.token,
            until, self.meta, self.name,
        )  # fmt: skip

    def put_record(self) -> dict[str, Any]:
        """The full record that recreates this task (compaction, ``update``)."""
        return {
            "op": "put", "id": self.id, "q": self.queue, "s": self.status.value,
            "a": self.attempt, "ma": self.max_attempts, "at": self.run_at_us,
            "p": self.priority, "meta": self.meta or None, "args": self.args,
            "res": self.result, "err": self.error, "by": self.lock_by, "tok": self.token,
            "until": self.until, "name": self.name,
        }  # fmt: skip


def set_record(entry: Entry, status: Status, **changes: Any) -> dict[str, Any]:
    """A ``set`` record: ``entry``'s mutable fields with ``changes`` applied.

    The lease (``by``/``tok``/``until``) is cleared unless given; ``res`` and
    ``err`` are kept unless given.
    """
    record = {
        "op": "set", "id": entry.id, "s": status.value, "a": entry.attempt,
        "at": entry.run_at_us, "res": entry.result, "err": entry.error,
        "by": None, "tok": None, "until": None,
    }  # fmt: skip
    record.update(changes)
    return record


class WorkerRecord:
    """A registered worker: what ``list_workers`` shows."""

    __slots__ = ("info", "last_us")

    def __init__(self, info: WorkerInfo, last_us: int) -> None:
        self.info = info
        self.last_us = last_us


class QueueHeaps:
    """One queue's ready heap ``(-priority, seq, id)`` and delayed heap ``(due_us, ...)``."""

    __slots__ = ("delayed", "ready")

    def __init__(self) -> None:
        self.ready: list[tuple[int, int, TaskId]] = []
        self.delayed: list[tuple[int, int, int, TaskId]] = []


class State:
    """Everything the journal says, indexed for O(log n) claims."""

    def __init__(
        self,
        on_ready: Callable[[str], None] = lambda _: None,
        on_final: Callable[[TaskId], None] = lambda _: None,
    ) -> None:
        self.tasks: dict[TaskId, Entry] = {}
        self.queues: dict[str, QueueHeaps] = {}
        self.held: dict[str, set[TaskId]] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self.records = 0
        self._seq = 0
        self._on_ready = on_ready
        self._on_final = on_final

    @property
    def dead(self) -> int:
        """Records in the journal that a compaction would drop."""
        return self.records - len(self.tasks) - len(self.workers)

    # --- replay -----------------------------------------------------------------

    def apply(self, record: dict[str, Any]) -> None:
        """Change the state as ``record`` says (``KeyError``/``ValueError`` if it cannot)."""
        op = record["op"]
        if op == "set":
            entry = self.tasks[record["id"]]
            was = entry.status
            self._unhold(entry)
            entry.set(record)
            self._index(entry, was)
        elif op == "put":
            self._seq += 1
            entry = Entry(record, self._seq)
            old = self.tasks.get(entry.id)
            was = None
            if old is not None:
                was = old.status
                self._unhold(old)
            self.tasks[entry.id] = entry
            self._index(entry, was)
        elif op == "beat":
            name = _opt_str(record["w"]) or ""
            until = _int(record["until"])
            for tid in self.held.get(name, ()):
                self.tasks[tid].until = until
            worker = self.workers.get(name)
            if worker is not None:
                worker.last_us = _int(record["at"])
        elif op == "worker":
            info = WorkerInfo(
                _opt_str(record["w"]) or "",
                _opt_str(record["q"]) or "",
                _int(record["c"]),
                from_us(_int(record["started"])),
                _opt_str(record.get("layers")) or "",
            )
            self.workers[info.name] = WorkerRecord(info, _int(record["at"]))
        else:
            raise ValueError(f"unknown op {op!r}")
        self.records += 1

    def _unhold(self, entry: Entry) -> None:
        if entry.lock_by is not None:
            held = self.held.get(entry.lock_by)
            if held is not None:
                held.discard(entry.id)

    def _index(self, entry: Entry, was: Status | None) -> None:
        status = entry.status
        if status in READY:
            self._seq += 1
            entry.seq = self._seq
            heaps = self.queues.get(entry.queue)
            if heaps is None:
                heaps = self.queues[entry.queue] = QueueHeaps()
            heapq.heappush(heaps.delayed, (entry.run_at_us, -entry.priority, entry.seq, entry.id))
            self._on_ready(entry.queue)
        elif status in _HELD:
            if entry.lock_by is not None:
                self.held.setdefault(entry.lock_by, set()).add(entry.id)
        elif status in FINAL and was not in FINAL:
            self._on_final(entry.id)

    # --- queries ------------------------------------------------------------------

    def next_ready(self, queue: str, now_us: int) -> Entry | None:
        """The task of ``queue`` to claim next (highest priority, then FIFO), not removed."""
        heaps = self.queues.get(queue)
        if heaps is None:
            return None
        ready, delayed, tasks = heaps.ready, heaps.delayed, self.tasks
        while delayed and delayed[0][0] <= now_us:
            _, neg, seq, tid = heapq.heappop(delayed)
            heapq.heappush(ready, (neg, seq, tid))
        while ready:
            _, seq, tid = ready[0]
            entry = tasks.get(tid)
            if entry is not None and entry.seq == seq and entry.status in READY:
                return entry
            heapq.heappop(ready)
        return None

    def next_due_us(self, queue: str) -> int | None:
        """When the earliest delayed task of ``queue`` becomes ready (may be stale)."""
        heaps = self.queues.get(queue)
        return heaps.delayed[0][0] if heaps is not None and heaps.delayed else None

    def expired(self, now_us: int) -> Iterator[Entry]:
        """Held tasks whose lease deadline has passed."""
        for ids in self.held.values():
            for tid in ids:
                entry = self.tasks[tid]
                if entry.until is not None and entry.until <= now_us:
                    yield entry

    def compacted(self, keep_final: bool) -> Iterator[dict[str, Any]]:
        """Records that recreate this state (ready order preserved), optionally without
        finished tasks."""
        for worker in self.workers.values():
            yield worker_record(worker.info, worker.last_us)
        for entry in sorted(self.tasks.values(), key=lambda e: e.seq):
            if keep_final or entry.status not in FINAL:
                yield entry.put_record()


def worker_record(info: WorkerInfo, at_us: int) -> dict[str, Any]:
    """The record registering ``info``."""
    return {
        "op": "worker", "w": info.name, "q": info.queue, "c": info.concurrency,
        "started": to_us(info.started_at), "layers": info.layers or None, "at": at_us,
    }  # fmt: skip

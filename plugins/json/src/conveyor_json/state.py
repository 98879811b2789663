"""The in-memory index a journal replays into: tasks by id, ready and delayed heaps, leases.

Every change goes through ``State.apply(record)``, both when a record is
replayed from the file and when this process makes it, so what is in memory
is exactly what the journal says. Heap entries are never removed in place:
one is live only while its task is still ready under the same ``seq``. Waiting and
finished tasks are held packed (see ``packed.Tasks``): what a change is applied to
is ``tasks.take(id)``, a full entry, packed again once it waits or is finished.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

from conveyor import Status, WorkerInfo
from conveyor_json import records, snapshot
from conveyor_json.entry import FIELDS, Entry, Moved, Source, from_us, ref, to_us
from conveyor_json.packed import FINAL, READY, WAITING, Tasks, run_at_of, waits_at
from conveyor_json.run import Run

__all__ = ["Entry", "Source", "State", "WorkerRecord", "to_us", "from_us", "READY", "FINAL"]

_HELD = frozenset({Status.RUNNING, Status.QUEUED})
_PACKS = READY | FINAL
_ARGS, _RES, _STATUS, _BY = (FIELDS.index(f) for f in ("_args", "_res", "status", "lock_by"))
_SEQ, _QUEUE, _AT, _PRIORITY, _ID = (
    FIELDS.index(f) for f in ("seq", "queue", "run_at_us", "priority", "id")
)


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise ValueError(f"expected a string, got {value!r}")
    return value


class WorkerRecord:
    """A registered worker: what ``list_workers`` shows."""

    __slots__ = ("info", "last_us")

    def __init__(self, info: WorkerInfo, last_us: int) -> None:
        self.info = info
        self.last_us = last_us


class QueueHeaps:
    """One queue's ready heap ``(-priority, run_at_us, id, seq)`` (the rules' ``order_key``:
    a released or abandoned task keeps its place), delayed heap ``(due_us, ...)``, and
    perhaps a ``Run`` beside them (``next_ready`` takes the lesser of both heads)."""

    __slots__ = ("delayed", "ready", "run")

    def __init__(self) -> None:
        self.ready: list[tuple[int, int, str, int]] = []
        self.delayed: list[tuple[int, int, int, str]] = []
        self.run: Run | None = None


class State:
    """Everything the journal says, indexed for O(log n) claims."""

    def __init__(
        self,
        on_ready: Callable[[str], None] = lambda _: None,
        on_final: Callable[[str], None] = lambda _: None,
        source: Source | None = None,
    ) -> None:
        self.tasks = Tasks(source)
        self.source = source
        # One string object per queue or worker name, however many tasks carry it.
        self._names: dict[str, str] = {}
        self.name = self._name
        self.queues: dict[str, QueueHeaps] = {}
        self.unsettled: set[QueueHeaps] = set()
        self.held: dict[str, set[str]] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self.records = 0
        self.tail = 0
        """Records applied since the last snapshot: what opening the store replays line by line."""
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
            entry = self.tasks.take(record["id"])
            was = entry[_STATUS]
            if entry[_BY] is not None:
                self._unhold(entry)
            try:
                entry.set(record, self.name)
            except BaseException:
                # Unchanged but no longer packed: a run's place for it is stale now, so
                # it needs a heap entry to stay claimable (a record cut as a torn tail).
                if was in READY:
                    self._requeue(entry)
                raise
            self._index(entry, was)
        elif op == "put":
            self._seq += 1
            entry = Entry.of(record, self._seq, self.source, self.name)
            old = self.tasks.put(entry)
            was = None
            if old is not None:
                was = old.status
                self._unhold(old)
            self._index(entry, was)
        elif op == "beat":
            name = _opt_str(record["w"]) or ""
            until, beat_at = _int(record["until"]), _int(record["at"])
            live = self.tasks.live
            for tid in self.held.get(name, ()):
                entry = live[tid]
                if entry.until is not None and beat_at < entry.until:
                    entry.until = until  # an expired lease stays expired (rules.extend)
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
        self.tail += 1

    def _name(self, name: str) -> str:
        return self._names.setdefault(name, name)

    def _unhold(self, entry: Entry) -> None:
        if entry.lock_by is not None:
            held = self.held.get(entry.lock_by)
            if held is not None:
                held.discard(entry.id)

    def _requeue(self, entry: Entry) -> None:
        heaps = self.heaps(entry[_QUEUE])
        key = (entry[_AT], -entry[_PRIORITY], entry[_SEQ], entry[_ID])
        heapq.heappush(heaps.delayed, key)

    def _index(self, entry: Entry, was: Status | None) -> None:
        # Fields by index: this runs for every record replayed (a property is a call).
        status = entry[_STATUS]
        if status in READY:
            seq = self._seq = self._seq + 1
            entry[_SEQ] = seq
            queue = entry[_QUEUE]
            heaps = self.queues.get(queue) or self.heaps(queue)
            heapq.heappush(heaps.delayed, (entry[_AT], -entry[_PRIORITY], seq, entry[_ID]))
            self.tasks.settle(entry)
            self._on_ready(queue)
        elif status in _HELD:
            if entry[_BY] is not None:
                self.held.setdefault(entry[_BY], set()).add(entry[_ID])
        elif status in FINAL:
            if was not in FINAL:
                self._on_final(entry[_ID])
            self.tasks.settle(entry)

    # --- queries ------------------------------------------------------------------

    def settle(self) -> None:
        """Make the heaps a snapshot appended to heaps again (before any query)."""
        for heaps in self.unsettled:
            heapq.heapify(heaps.delayed)
        self.unsettled.clear()

    def next_ready(self, queue: str, now_us: int) -> Entry | None:
        """The task of ``queue`` to claim next (highest priority, then FIFO), not removed."""
        if self.unsettled:
            self.settle()
        heaps = self.queues.get(queue)
        if heaps is None:
            return None
        ready, delayed, current = heaps.ready, heaps.delayed, self._current
        while delayed and delayed[0][0] <= now_us:
            due, neg, seq, tid = heapq.heappop(delayed)
            heapq.heappush(ready, (neg, due, tid, seq))
        # A heap or run entry is stale once its task changed (claimed, finished: a new seq).
        while ready and not current(ready[0][2], ready[0][3]):
            heapq.heappop(ready)
        run = heaps.run
        if run is not None:
            table = self.tasks.table
            rows, places, seqs = table.rows, run.pos, run.seqs
            head, end = run.head, len(places)
            while head < end and not waits_at(rows, places[head], seqs[head]):
                head += 1
            run.head = head
            if head == end:
                heaps.run = None
            elif run.due[head] <= now_us and (not ready or run.key(table.tid) < ready[0]):
                return self.tasks.take_at(places[head])
        return self.tasks.take(ready[0][2]) if ready else None

    def _current(self, tid: str, seq: int) -> bool:
        """Whether task ``tid`` is still ready under ``seq``."""
        entry = self.tasks.live.get(tid)
        if entry is not None:
            return entry[_SEQ] == seq and entry[_STATUS] in READY
        table = self.tasks.table
        pos = table.find(tid)
        return pos >= 0 and waits_at(table.rows, pos, seq)

    def next_due_us(self, queue: str) -> int | None:
        """When the earliest delayed task of ``queue`` becomes ready (may be stale)."""
        if self.unsettled:
            self.settle()
        heaps = self.queues.get(queue)
        if heaps is None:
            return None
        due = [heaps.delayed[0][0]] if heaps.delayed else []
        if heaps.run is not None and heaps.run.head < len(heaps.run):
            due.append(heaps.run.due[heaps.run.head])
        return min(due, default=None)

    def expired(self, now_us: int) -> Iterator[Entry]:
        """Held tasks whose lease deadline has passed."""
        live = self.tasks.live
        for ids in self.held.values():
            for tid in ids:
                entry = live[tid]
                if entry.until is not None and entry.until <= now_us:
                    yield entry

    def compacted(self, keep_final: bool, start: int, moved: Moved) -> Iterator[bytes]:
        """What recreates this state, optionally without finished tasks: the workers'
        lines, then the tasks in snapshot groups (see ``snapshot``), in ready order.

        ``start`` is the offset of the first line in the new file; each task
        written is added to ``moved`` with the references of its payloads there,
        for ``remap`` once the new file has replaced the old.
        """
        at = start
        for worker in self.workers.values():
            line = records.encode(worker_record(worker.info, worker.last_us))
            at += len(line)
            yield line
        tasks = self.tasks
        live = tasks.live
        order = [
            (e[_AT], tid, -1) for tid, e in live.items() if keep_final or e[_STATUS] not in FINAL
        ]
        # The packed ones by position: no copy of their rows is held meanwhile.
        order.extend(
            (run_at_of(row), tid, pos)
            for pos, tid, row in tasks.table.items()
            if keep_final or row[0] >= WAITING
        )
        order.sort()
        row_at, unpack = tasks.table.row, tasks.unpack
        kept = (live[tid] if pos < 0 else unpack(tid, row_at(pos)) for _, tid, pos in order)
        for chunk in snapshot.chunks(kept):
            first = len(moved)
            data = snapshot.encode(chunk, at, moved)
            for k in range(first, len(moved)):
                entry, args, res = moved[k]
                if type(entry) is not str and live.get(entry[_ID]) is not entry:
                    moved[k] = (entry[_ID], args, res)
            at += len(data)
            yield data

    def remap(self, moved: Moved, fd: int) -> None:
        """Point every task at its payloads in the new file ``fd`` (none stays in memory);
        a finished task whose payloads were in memory is packed now."""
        if self.source is not None:
            self.source.fd = fd
        tasks = self.tasks
        for entry, args, res in moved:
            if isinstance(entry, str):
                tasks.repoint(entry, args, res)
                continue
            entry[_ARGS] = args
            entry[_RES] = res
            if entry[_STATUS] in _PACKS:
                self.tasks.settle(entry)
        self.tail = 0

    def apply_group(self, lines: list[bytes], stop: int) -> None:
        """Apply the records of a group ending at ``stop``, each with a reference to its line
        (a snapshot group is loaded in bulk)."""
        at = stop - sum(map(len, lines)) - len(lines)
        if lines[0].startswith(snapshot.PREFIX):
            count = snapshot.load(self, lines, at)
            self.records += count
            self.tail = 0
            return
        decoded = []
        for line in lines:  # all decoded before any is applied: a group is all or nothing
            decoded.append(records.decode(line, ref(at, len(line))))
            at += len(line) + 1
        for record in decoded:
            self.apply(record)

    def heaps(self, queue: str) -> QueueHeaps:
        """The heaps of ``queue`` (made empty the first time)."""
        heaps = self.queues.get(queue)
        if heaps is None:
            heaps = self.queues[queue] = QueueHeaps()
        return heaps


def worker_record(info: WorkerInfo, at_us: int) -> dict[str, Any]:
    """The record registering ``info``."""
    return {
        "op": "worker", "w": info.name, "q": info.queue, "c": info.concurrency,
        "started": to_us(info.started_at), "layers": info.layers or None, "at": at_us,
    }  # fmt: skip

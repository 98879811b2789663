"""The tasks of the index by id: full entries for the busy ones, one integer for the others.

A finished task (``Done``, ``Killed``) is never claimed again, and a waiting one
(``Pending``, ``Failed``) is only looked at when its turn comes: neither needs
an ``Entry``'s list slots. When a task's payloads are in the file (references,
see ``entry``) and it carries none of the rarely set fields (``meta``, ``name``,
an error, a lease), all of it fits in 41 bytes, *packed* (``_PACKED``, little-endian)::

    status        1 byte  (an index into ``_CODES``)
    attempt       2       (0 .. 65,535)
    max_attempts  2       (0 .. 65,535)
    priority      2       (+ 32,768)
    queue         2       (an index into ``Tasks.queues``)
    run_at_us     8
    args          8       (a reference, see ``entry.ref``)
    res           8       (a reference, or 0 when there is none)
    seq           8       (a waiting task's place, see ``State``; 0 when finished)

made and read by one ``struct`` call and held in a ``table.Table`` beside the
task's id (about 75 bytes a task in all, against an entry's 500 or so). The
entry is built again from it (``unpack``) when the task is claimed, fetched,
listed, waited for or rewritten by a compaction; a task that does not fit (a
payload still in memory, an error, a huge priority) stays a full entry, so
nothing is lost by packing.
A running task is always a full entry: its lease changes at every heartbeat.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import compress, repeat

from conveyor import Status
from conveyor_json.entry import FIELDS, Entry, Source
from conveyor_json.table import FREE, ROW, Table, fits

__all__ = ["FINAL", "READY", "WAITING", "Tasks", "pack_columns", "run_at_of", "seq_of", "waits_at"]

FINAL = frozenset({Status.DONE, Status.KILLED})
READY = frozenset({Status.PENDING, Status.FAILED})
_CODES = (Status.DONE, Status.KILLED, Status.PENDING, Status.FAILED)
_CODE = {status: i for i, status in enumerate(_CODES)}
WAITING = 2
"""Codes from this one up (below ``FREE``) are waiting tasks', those below finished ones."""
_U16 = (1 << 16) - 1
_U64 = (1 << 64) - 1
_P_BIAS = 1 << 15
_PACKED = struct.Struct("<BHHHHQQQQ")
assert _PACKED.size == ROW
_U64_AT = struct.Struct("<Q").unpack_from
_RUN_AT_OFFSET, _ARGS_OFFSET, _SEQ_OFFSET = 9, 17, 33
_REFS = struct.Struct("<QQ")
_FINAL_CODES = frozenset({0, 1})
_SLOT = {f: FIELDS.index(f) for f in FIELDS}
_STATUS_AT, _QUEUE_AT, _ID_AT = _SLOT["status"], _SLOT["queue"], _SLOT["id"]
# ``pack`` and ``unpack`` take an entry apart by position: in this order.
assert FIELDS == (
    "id", "queue", "max_attempts", "priority", "meta", "name", "_args", "src", "seq",
    "status", "attempt", "run_at_us", "_res", "error", "lock_by", "token", "until",
)  # fmt: skip


def run_at_of(packed: bytes) -> int:
    """The ``run_at_us`` of a packed task."""
    return _U64_AT(packed, _RUN_AT_OFFSET)[0]  # type: ignore[no-any-return]


def seq_of(packed: bytes) -> int:
    """The ``seq`` of a packed task (0 for a finished one)."""
    return _U64_AT(packed, _SEQ_OFFSET)[0]  # type: ignore[no-any-return]


def waits_at(rows: bytearray, pos: int, seq: int) -> bool:
    """Whether the row at table position ``pos`` is a waiting task's, under ``seq``."""
    at = pos * ROW
    return WAITING <= rows[at] != FREE and _U64_AT(rows, at + _SEQ_OFFSET)[0] == seq


class Tasks:
    """The index's tasks by id (``get``, ``in``, ``len``, ``values`` as a dict has them).

    ``live`` holds full entries (every held task, and those that do not pack);
    ``table`` the packed ones, finished and waiting (see ``table``). An entry read from a
    packed one is a fresh copy: only ``State`` changes tasks, and it ``take``s one into
    ``live`` first.
    """

    __slots__ = ("_queue_index", "live", "queues", "source", "table")

    def __init__(self, source: Source | None) -> None:
        self.live: dict[str, Entry] = {}
        self.table = Table()
        self.queues: list[str] = []
        self._queue_index: dict[str, int] = {}
        self.source = source

    def __len__(self) -> int:
        return len(self.live) + len(self.table)

    def __contains__(self, tid: object) -> bool:
        return tid in self.live or (isinstance(tid, str) and self.table.find(tid) >= 0)

    def get(self, tid: str) -> Entry | None:
        """The task ``tid`` (a copy when it is packed), or ``None``."""
        entry = self.live.get(tid)
        if entry is not None:
            return entry
        table = self.table
        pos = table.find(tid)
        return None if pos < 0 else self.unpack(str(tid), table.row(pos))

    def __getitem__(self, tid: str) -> Entry:
        entry = self.get(tid)
        if entry is None:
            raise KeyError(tid)
        return entry

    def values(self) -> Iterator[Entry]:
        """Every task (the packed ones as copies)."""
        yield from self.live.values()
        unpack = self.unpack
        for _, tid, packed in self.table.items():
            yield unpack(tid, packed)

    def packed(self, waiting: bool) -> dict[str, bytes]:
        """The packed tasks that wait (or are finished) by id: a copy, for inspection."""
        return {tid: row for _, tid, row in self.table.items() if (row[0] >= WAITING) is waiting}

    def _unpacked(self, tid: str) -> Entry | None:
        """The entry of packed task ``tid``, no longer packed."""
        packed = self.table.pop(tid)
        return None if packed is None else self.unpack(tid, packed)

    def take(self, tid: str) -> Entry:
        """The live entry of ``tid``, unpacked first if it is packed (``KeyError`` if there
        is no such task): what a change is applied to."""
        entry = self.live.get(tid)
        if entry is None:
            entry = self._unpacked(tid)
            if entry is None:
                raise KeyError(tid)
            self.live[tid] = entry
        return entry

    def take_at(self, pos: int) -> Entry:
        """``take`` of the packed task at table position ``pos``."""
        return self.take(self.table.tid(pos))

    def put(self, entry: Entry) -> Entry | None:
        """Store ``entry`` (a whole task); return the one it replaces (a copy if packed)."""
        tid = entry[_ID_AT]
        old = self.live.get(tid)
        if old is None:
            old = self._unpacked(tid)
        self.live[tid] = entry
        return old

    def settle(self, entry: Entry) -> None:
        """Pack ``entry`` (live, just finished or made ready) if it fits."""
        tid = entry[_ID_AT]
        if fits(tid):
            packed = self.pack(entry)
            if packed is not None:
                del self.live[tid]
                self.table.add(tid, packed)

    def drop_final(self) -> int:
        """Forget every finished task (``vacuum``); return how many there were."""
        dropped = [tid for tid, e in self.live.items() if e[_STATUS_AT] in FINAL]
        for tid in dropped:
            del self.live[tid]
        return len(dropped) + self.table.drop(_FINAL_CODES)

    def repoint(self, tid: str, args: int, res: int | None) -> None:
        """Give packed task ``tid`` its payload references in a compaction's new file."""
        table = self.table
        pos = table.find(tid)
        at = pos * ROW + _ARGS_OFFSET
        table.rows[at : at + 16] = _REFS.pack(args, res or 0)

    # --- packing ---------------------------------------------------------------------------

    def queue_index(self, queue: str) -> int:
        """The index of ``queue`` in ``queues`` (added the first time)."""
        index = self._queue_index.get(queue)
        if index is None:
            index = self._queue_index[queue] = len(self.queues)
            self.queues.append(queue)
        return index

    def pack(self, entry: Entry) -> bytes | None:
        """``entry`` (finished or waiting) packed, or ``None`` if it does not fit."""
        (_, queue, ma, priority, meta, name, args, _, seq, status, attempt, at, res,
         error, lock_by, token, until) = entry  # fmt: skip
        if (
            type(args) is not int
            or meta is not None
            or name is not None
            or error is not None
            or lock_by is not None
            or token is not None
            or until is not None
            or not (res is None or (type(res) is int and res > 0))
        ):
            return None
        code = _CODE.get(status)
        if code is None:
            return None
        index = self._queue_index.get(queue)
        if index is None:
            index = self.queue_index(queue)
        try:  # a field out of its range (``_PACKED``) does not pack
            return _PACKED.pack(
                code, attempt, ma, priority + _P_BIAS, index, at, args, res or 0,
                seq if code >= WAITING else 0,
            )  # fmt: skip
        except struct.error:
            return None

    def unpack(self, tid: str, packed: bytes) -> Entry:
        """The entry ``packed`` stands for."""
        code, attempt, ma, priority, queue, at, args, res, seq = _PACKED.unpack(packed)
        return Entry(
            (tid, self.queues[queue], ma, priority - _P_BIAS, None, None, args, self.source,
             seq, _CODES[code], attempt, at, res or None, None, None, None, None)
        )  # fmt: skip

    def summary(self, queue: str | None) -> Iterator[tuple[str, Status, str | None]]:
        """``(id, status, name)`` of every task (of ``queue``), without unpacking any."""
        for tid, entry in self.live.items():
            if queue is None or entry[_QUEUE_AT] == queue:
                yield tid, entry[_STATUS_AT], entry.name
        table = self.table
        rows = table.rows
        status = rows[::ROW]
        if queue is None:
            chosen = map(FREE.__ne__, status)
        else:
            want = self._queue_index.get(queue, -1)
            # A free row's queue bytes are stale, but its status never matches a task's.
            chosen = map(want.__eq__, map(_queue_at, rows[7::ROW], rows[8::ROW]))
        tid_at = table.tid
        for pos in compress(range(len(status)), chosen):
            code = status[pos]
            if code != FREE:
                yield tid_at(pos), _CODES[code], None

    def queue_names(self) -> set[str]:
        """The queues that have tasks."""
        names = {entry[_QUEUE_AT] for entry in self.live.values()}
        rows = self.table.rows
        used = map(FREE.__ne__, rows[::ROW])
        indices = set(compress(map(_queue_at, rows[7::ROW], rows[8::ROW]), used))
        names.update(self.queues[i] for i in indices)
        return names


def _queue_at(low: int, high: int) -> int:
    return low | high << 8


_LETTERS = ({"D": 0, "K": 1}, {"P": 2, "F": 3})
"""A snapshot's status letters (see ``snapshot.CODES``) as packed statuses: finished, waiting."""


def pack_columns(
    tasks: Tasks,
    waiting: bool,
    codes: str,
    queues: list[str],
    qi: list[int],
    numbers: list[list[int]],
    args: list[int],
    res: list[int | None],
    seqs: range,
    rare: set[int],
) -> tuple[list[bool], list[bytes]] | None:
    """The finished (or ``waiting``) tasks of a snapshot group that pack, and their packed
    forms, made at C speed: a mask over the group and the values of the tasks it selects
    (``None`` when none packs). ``numbers`` are the attempt, max_attempts, run_at and
    priority columns; ``rare`` the tasks that have a rarely set field (they stay entries)."""
    letters = _LETTERS[waiting]
    chosen = list(map(letters.__contains__, codes))
    for i in rare:
        if 0 <= i < len(chosen):
            chosen[i] = False
    if not any(chosen):
        return None
    attempts, max_attempts, run_at, priority = numbers
    slots = [tasks.queue_index(q) for q in queues]
    if not (
        min(attempts) >= 0 and max(attempts) <= _U16
        and min(max_attempts) >= 0 and max(max_attempts) <= _U16
        and min(priority) >= -_P_BIAS and max(priority) < _P_BIAS
        and min(run_at) >= 0 and max(run_at) <= _U64
        and max(slots, default=0) <= _U16
    ):  # fmt: skip
        return None  # the whole group stays entries: rare enough not to sort out
    res_or_0 = [0 if r is None else r for r in compress(res, chosen)]
    packed = list(
        map(
            _PACKED.pack,
            map(letters.__getitem__, compress(codes, chosen)),
            compress(attempts, chosen),
            compress(max_attempts, chosen),
            map(_P_BIAS.__add__, compress(priority, chosen)),
            map(slots.__getitem__, compress(qi, chosen)),
            compress(run_at, chosen),
            compress(args, chosen),
            res_or_0,
            compress(seqs, chosen) if waiting else repeat(0),
        )
    )
    return chosen, packed

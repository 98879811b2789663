"""The tasks of the index by id: full entries for the live ones, one integer for most finished ones.

A finished task (``Done`` or ``Killed``) is never claimed again, so it needs no
heap entry, no lease and none of an ``Entry``'s list slots: only what a listing,
``fetch_by_id`` or ``wait_for`` reports. When its payloads are in the file (the
references of ``entry``) and it carries none of the rarely set fields (``meta``,
``name``, an error, a lease), all of it fits in one ``int``, *packed*::

    bits   0-2    status       (an index into ``_CODES``)
           3-18   attempt      (0 .. 65,535)
          19-34   max_attempts (0 .. 65,535)
          35-50   priority + 32,768
          51-66   queue        (an index into ``Tasks.queues``)
          67-130  run_at_us    (0 .. 2**64 - 1)
         131-194  args         (a reference, see ``entry.ref``)
         195-     res          (a reference, or 0 when there is none)

about 56 bytes instead of an entry's 400 or so. The entry is built again from
it (``unpack``) when the task is fetched, listed, waited for or rewritten by a
compaction; a task that does not fit (a payload still in memory, an error, a
huge priority) stays a full entry, so nothing is ever lost by packing.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from itertools import accumulate, compress, repeat

from conveyor import Status
from conveyor_json.entry import FIELDS, Entry, Source

__all__ = ["FINAL", "Tasks", "pack_columns", "run_at_of", "status_of"]

FINAL = frozenset({Status.DONE, Status.KILLED})
_CODES = (Status.DONE, Status.KILLED)
_CODE = {status: i for i, status in enumerate(_CODES)}
_U16 = (1 << 16) - 1
_U64 = (1 << 64) - 1
_P_BIAS = 1 << 15
_ATTEMPT, _MA, _PRIO, _QUEUE, _AT, _ARGS, _RES = 3, 19, 35, 51, 67, 131, 195
_REFS = (1 << _ARGS) - 1
"""The bits below the payload references (what a compaction's remap keeps)."""
_SLOT = {f: FIELDS.index(f) for f in FIELDS}
_RARE = tuple(_SLOT[f] for f in ("meta", "name", "error", "lock_by", "token", "until"))
_STATUS_AT, _QUEUE_AT, _ID_AT = _SLOT["status"], _SLOT["queue"], _SLOT["id"]
_A_AT, _MA_AT, _P_AT = _SLOT["attempt"], _SLOT["max_attempts"], _SLOT["priority"]
_RUN_AT = _SLOT["run_at_us"]
_ARGS_AT, _RES_AT = _SLOT["_args"], _SLOT["_res"]


def status_of(packed: int) -> Status:
    """The status of a packed task."""
    return _CODES[packed & 7]


def run_at_of(packed: int) -> int:
    """The ``run_at_us`` of a packed task."""
    return packed >> _AT & _U64


class Tasks:
    """The index's tasks by id (``get``, ``in``, ``len``, ``values`` as a dict has them).

    ``live`` holds full entries (every task that can still change, and finished ones
    that do not pack); ``final`` the packed ones. An entry read from ``final`` is a
    fresh copy: only ``State`` changes tasks, and it ``take``s one into ``live`` first.
    """

    __slots__ = ("_queue_index", "final", "live", "queues", "source")

    def __init__(self, source: Source | None) -> None:
        self.live: dict[str, Entry] = {}
        self.final: dict[str, int] = {}
        self.queues: list[str] = []
        self._queue_index: dict[str, int] = {}
        self.source = source

    def __len__(self) -> int:
        return len(self.live) + len(self.final)

    def __contains__(self, tid: object) -> bool:
        return tid in self.live or tid in self.final

    def get(self, tid: str) -> Entry | None:
        """The task ``tid`` (a copy when it is packed), or ``None``."""
        entry = self.live.get(tid)
        if entry is not None:
            return entry
        packed = self.final.get(tid)
        return None if packed is None else self.unpack(str(tid), packed)

    def __getitem__(self, tid: str) -> Entry:
        entry = self.get(tid)
        if entry is None:
            raise KeyError(tid)
        return entry

    def values(self) -> Iterator[Entry]:
        """Every task (the packed ones as copies)."""
        yield from self.live.values()
        unpack = self.unpack
        for tid, packed in self.final.items():
            yield unpack(tid, packed)

    def take(self, tid: str) -> Entry:
        """The live entry of ``tid``, made from its packed form first if it is finished
        (``KeyError`` if there is no such task): what a change is applied to."""
        entry = self.live.get(tid)
        if entry is None:
            entry = self.live[tid] = self.unpack(tid, self.final.pop(tid))
        return entry

    def put(self, entry: Entry) -> Entry | None:
        """Store ``entry`` (a whole task); return the one it replaces (a copy if packed)."""
        tid = entry[_ID_AT]
        old = self.live.get(tid)
        if old is None:
            packed = self.final.pop(tid, None)
            if packed is not None:
                old = self.unpack(tid, packed)
        self.live[tid] = entry
        return old

    def settle(self, entry: Entry) -> None:
        """Pack ``entry`` (live, just finished) if it fits."""
        packed = self.pack(entry)
        if packed is not None:
            tid = entry[_ID_AT]
            del self.live[tid]
            self.final[tid] = packed

    def drop_final(self) -> int:
        """Forget every finished task (``vacuum``); return how many there were."""
        dropped = [tid for tid, e in self.live.items() if e[_STATUS_AT] in FINAL]
        for tid in dropped:
            del self.live[tid]
        count = len(dropped) + len(self.final)
        self.final.clear()
        return count

    def repoint(self, tid: str, args: int, res: int | None) -> None:
        """Give packed task ``tid`` its payload references in a compaction's new file."""
        self.final[tid] = self.final[tid] & _REFS | args << _ARGS | (res or 0) << _RES

    # --- packing ---------------------------------------------------------------------------

    def queue_index(self, queue: str) -> int:
        """The index of ``queue`` in ``queues`` (added the first time)."""
        index = self._queue_index.get(queue)
        if index is None:
            index = self._queue_index[queue] = len(self.queues)
            self.queues.append(queue)
        return index

    def pack(self, entry: Entry) -> int | None:
        """``entry`` (finished) as one integer, or ``None`` if it does not fit."""
        args, res = entry[_ARGS_AT], entry[_RES_AT]
        if type(args) is not int or not (res is None or type(res) is int):
            return None
        for slot in _RARE:
            if entry[slot] is not None:
                return None
        code = _CODE.get(entry[_STATUS_AT])
        attempt, ma, priority, at = entry[_A_AT], entry[_MA_AT], entry[_P_AT], entry[_RUN_AT]
        priority += _P_BIAS
        if (
            code is None
            or not 0 <= attempt <= _U16
            or not 0 <= ma <= _U16
            or not 0 <= priority <= _U16
            or not 0 <= at <= _U64
            or not 0 <= args <= _U64
            or not (res is None or 0 < res <= _U64)
        ):
            return None
        queue = self.queue_index(entry[_QUEUE_AT])
        if queue > _U16:
            return None
        packed: int = (
            code | attempt << _ATTEMPT | ma << _MA | priority << _PRIO | queue << _QUEUE
            | at << _AT | args << _ARGS | (res or 0) << _RES
        )  # fmt: skip
        return packed

    def unpack(self, tid: str, packed: int) -> Entry:
        """The entry ``packed`` stands for (not ready: its ``seq`` is 0)."""
        res = packed >> _RES
        return Entry(
            (tid, self.queues[packed >> _QUEUE & _U16], packed >> _MA & _U16,
             (packed >> _PRIO & _U16) - _P_BIAS, None, None, packed >> _ARGS & _U64,
             self.source, 0, _CODES[packed & 7], packed >> _ATTEMPT & _U16,
             packed >> _AT & _U64, res or None, None, None, None, None)
        )  # fmt: skip

    def summary(self, queue: str | None) -> Iterator[tuple[str, Status, str | None]]:
        """``(id, status, name)`` of every task (of ``queue``), without unpacking any."""
        for tid, entry in self.live.items():
            if queue is None or entry[_QUEUE_AT] == queue:
                yield tid, entry[_STATUS_AT], entry.name
        if queue is None:
            for tid, packed in self.final.items():
                yield tid, _CODES[packed & 7], None
        elif queue in self._queue_index:
            want = self._queue_index[queue]
            for tid, packed in self.final.items():
                if packed >> _QUEUE & _U16 == want:
                    yield tid, _CODES[packed & 7], None

    def queue_names(self) -> set[str]:
        """The queues that have tasks."""
        names = {entry[_QUEUE_AT] for entry in self.live.values()}
        indices = {packed >> _QUEUE & _U16 for packed in self.final.values()}
        names.update(self.queues[i] for i in indices)
        return names


_LETTER = {"D": 0, "K": 1}
"""A snapshot's status letter (see ``snapshot.CODES``) as a packed status."""


def pack_columns(
    tasks: Tasks,
    codes: str,
    queues: list[str],
    qi: list[int],
    numbers: list[list[int]],
    args: list[int],
    res: list[int | None],
    rare: set[int],
) -> tuple[list[bool], list[int]] | None:
    """The finished tasks of a snapshot group that pack, and their packed forms, made at C
    speed: a mask over the group and the values of the tasks it selects (``None`` when
    none packs). ``numbers`` are the attempt, max_attempts, run_at and priority columns;
    ``rare`` the tasks that have a rarely set field (they stay entries)."""
    final = list(map(_LETTER.__contains__, codes))
    if not any(final):
        return None
    for i in rare:
        if 0 <= i < len(final):
            final[i] = False
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
    shift, join = operator.lshift, operator.or_

    def field(column: list[int], at: int) -> Iterator[int]:
        return map(shift, compress(column, final), repeat(at))

    values = map(_LETTER.__getitem__, compress(codes, final))
    values = map(join, values, field(attempts, _ATTEMPT))
    values = map(join, values, field(max_attempts, _MA))
    biased = map(_P_BIAS.__add__, compress(priority, final))
    values = map(join, values, map(shift, biased, repeat(_PRIO)))
    values = map(
        join, values, map(shift, map(slots.__getitem__, compress(qi, final)), repeat(_QUEUE))
    )
    values = map(join, values, field(run_at, _AT))
    values = map(join, values, field(args, _ARGS))
    packed = list(values)
    if any(compress(res, final)):
        place = list(accumulate(final))  # a packed task's index in ``packed``, plus 1
        for i, where in enumerate(res):
            if where is not None and final[i]:
                packed[place[i] - 1] |= where << _RES
    return final, packed

"""The snapshot a compaction writes: tasks in columns, loaded in bulk when the store opens.

Replaying one JSON line per task costs microseconds each in Python, so a store of
a million tasks would take many seconds to open. A compaction instead writes
the tasks as *snapshot groups* (format version 3): each an ordinary checked
group (see ``framing``) whose first line is a ``tasks`` record holding up to
``CHUNK`` tasks field by field (one JSON list per field), followed by one
``pay`` line per payload (every task's ``args``, then the results of those that have one)::

    {"op":"group","n":4,"len":...,"crc":...}
    {"op":"tasks","n":2,"id":["06h...","06h..."],"q":["default"],"qi":[0,0],
     "s":"PD","a":[0,1],"ma":[5,5],"at":[1795383924820602,1795383924820603],
     "p":[0,0],"res":[1],"x":{}}
    {"op":"pay","args":{"to":"a@b.c"}}
    {"op":"pay","args":{"to":"d@e.f"}}
    {"op":"pay","res":"ok"}

Loading one parses the ``tasks`` line (a few C-speed list parses) and builds the
entries with ``map``/``zip`` at C speed; the ``pay`` lines are not parsed at all:
each task keeps a reference (offset, length) to its payload lines, read back
when the task is handed out. ``x`` holds the fields most tasks lack, as
``[index, value]`` pairs: ``err``, ``by``, ``tok``, ``until``, ``name``, ``meta``.
"""

from __future__ import annotations

import heapq
import operator
import re
from collections.abc import Callable, Iterator
from itertools import accumulate, compress, repeat
from typing import TYPE_CHECKING, Any

from conveyor import Status
from conveyor_json import records
from conveyor_json.entry import FIELDS, Entry, Moved, payload_size, ref
from conveyor_json.framing import frame
from conveyor_json.packed import pack_columns
from conveyor_json.run import Run

if TYPE_CHECKING:
    from conveyor_json.state import QueueHeaps, State

__all__ = ["CHUNK", "PREFIX", "PAY", "chunks", "encode", "load", "payload_fragment"]

CHUNK = 4096
"""Tasks per snapshot group: a bounded amount to hold while writing or reading one."""
PREFIX = b'{"op":"tasks",'
PAY = b'{"op":"pay",'
CODES = {
    Status.PENDING: "P", Status.QUEUED: "Q", Status.RUNNING: "R",
    Status.FAILED: "F", Status.DONE: "D", Status.KILLED: "K",
}  # fmt: skip
_STATUS = {code: status for status, code in CODES.items()}
_READY = frozenset("PF")
_HELD = frozenset("RQ")
_EXTRA = {"err": str, "by": str, "tok": str, "until": int, "name": str, "meta": dict}
_SLOT = {"err": "error", "by": "lock_by", "tok": "token", "until": "until", "name": "name"}
_BYTES = 32 << 20
"""Payload bytes per snapshot group, well under ``framing.MAX_GROUP`` (any task fits:
a record line, so its payloads, is at most ``records.MAX_LINE``)."""
_IDS = re.compile(r"[0-9a-v]*")
_dumps = records._dumps


def payload_fragment(line: bytes) -> bytes:
    """The ``"args":...`` (or ``"args_b64":"..."``) of a ``pay`` line, as it is written."""
    return line[len(PAY) : -1]


def encode(entries: list[Entry], start: int, moved: Moved) -> bytes:
    """One snapshot group of ``entries`` (at most ``CHUNK``) to be written at ``start``.

    Appends ``(entry, args_ref, res_ref)`` to ``moved`` for each, the references
    in the new file (applied by ``State.remap`` once it replaced the old).
    """
    queues: dict[str, int] = {}
    extra: dict[str, list[list[Any]]] = {}
    pays: list[bytes] = []
    has_res: list[int] = []
    slots = [(key, FIELDS.index(slot)) for key, slot in _SLOT.items()]
    slots.append(("meta", FIELDS.index("meta")))
    for i, entry in enumerate(entries):
        for key, slot in slots:
            value = entry[slot]
            if value is not None:
                extra.setdefault(key, []).append([i, value])
        pays.append(PAY + _fragment(entry, "args") + b"}\n")
        if entry._res is not None:
            has_res.append(i)
    results = [PAY + _fragment(entries[i], "res") + b"}\n" for i in has_res]
    columns = {
        "op": "tasks",
        "n": len(entries),
        "id": [e.id for e in entries],
        "q": [],
        "qi": [queues.setdefault(e.queue, len(queues)) for e in entries],
        "s": "".join([CODES[e.status] for e in entries]),
        "a": [e.attempt for e in entries],
        "ma": [e.max_attempts for e in entries],
        "at": [e.run_at_us for e in entries],
        "p": [e.priority for e in entries],
        "res": has_res,
        "x": extra,
    }
    columns["q"] = list(queues)  # filled in while "qi" was built
    head = (_dumps(columns) + "\n").encode("ascii")
    data = frame([head, *pays, *results])
    at = start + data.index(b"\n") + 1 + len(head)
    refs = []
    for line in pays + results:
        refs.append(ref(at, len(line) - 1))
        at += len(line)
    res_refs: list[int | None] = [None] * len(entries)
    for i, where in zip(has_res, refs[len(entries) :], strict=True):
        res_refs[i] = where
    moved.extend(zip(entries, refs, res_refs, strict=False))
    return data


def _fragment(entry: Entry, key: str) -> bytes:
    """The payload ``key`` of ``entry`` as a record fragment, copied from the file when it is
    a ``pay`` line there (no parsing), else encoded."""
    held = entry._args if key == "args" else entry._res
    if type(held) is int and entry.src is not None:
        line = entry.src.line(held)
        if line.startswith(PAY):
            return payload_fragment(line)
        return records.fragment(line, key)
    else:
        value = held
    if type(value) is not bytes:
        raise ValueError(f"task {entry.id} has no {key} to write")
    return records.payload(key, value).encode("ascii")


def load(state: State, lines: list[bytes], start: int) -> int:
    """Add the tasks of one snapshot group (its record lines, the first at ``start``).

    Returns how many tasks it held; ``ValueError`` naming the problem if it is malformed.
    """
    try:
        cols = records._loads(lines[0].decode("ascii"))
        n = cols["n"]
        ids, qtable, qi, codes = cols["id"], cols["q"], cols["qi"], cols["s"]
        numbers = [cols[k] for k in ("a", "ma", "at", "p")]
        has_res, extra = cols["res"], cols["x"]
        if not (
            type(n) is int
            and n > 0
            and all(type(c) is list and len(c) == n for c in (ids, qi, *numbers))
            and type(codes) is str
            and len(codes) == n
            and type(qtable) is list
            and type(has_res) is list
            and type(extra) is dict
            and len(lines) == 1 + n + len(has_res)
        ):
            raise ValueError("its columns do not match its count")
        joined = "".join(ids)
        if len(joined) != 26 * n or set(map(len, ids)) != {26} or not _IDS.fullmatch(joined):
            raise ValueError("a task id is not 26 characters of 0-9 and a-v")
        types = set(map(type, qi))
        for column in numbers:
            types.update(map(type, column))
        if not types <= {int}:
            raise ValueError("a number column holds something else")
        queues = [state.name(q) for q in qtable if type(q) is str]
        if len(queues) != len(qtable):
            raise ValueError("a queue name is not a string")
        queue_of = list(map(queues.__getitem__, qi))
        statuses = list(map(_STATUS.__getitem__, codes))
    except (KeyError, IndexError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"a malformed snapshot group ({exc!r})") from None
    attempts, max_attempts, run_at, priority = numbers
    # References: the payload lines follow the columns line, each one newline apart.
    lens = list(map(len, lines))
    offsets = list(accumulate(map((1).__add__, lens[:-1]), initial=start))
    refs = list(map(operator.or_, map(operator.lshift, offsets, repeat(24)), lens))
    res_at = set(has_res)
    if len(res_at) != len(has_res) or not res_at <= set(range(n)):
        raise ValueError("a malformed snapshot group (bad result indices)")
    args_refs = refs[1 : 1 + n]
    res_refs: list[int | None] = [None] * n
    for i, where in zip(has_res, refs[1 + n :], strict=True):
        res_refs[i] = where
    seq0 = state._seq + 1
    state._seq += n
    seqs = range(seq0, seq0 + n)
    # Finished and waiting tasks are packed into the table (see ``packed``), the others
    # become entries; both at C speed, no Python call per task (the table indexes the
    # packed ones in one pass when it is next looked in).
    rare = _rare(extra)
    tasks = state.tasks
    packs = [
        pack_columns(tasks, waiting, codes, queues, qi, numbers, args_refs, res_refs, seqs, rare)
        for waiting in (False, True)
    ]
    none = repeat(None)
    rows = zip(
        ids, queue_of, max_attempts, priority, none, none, args_refs, repeat(state.source),
        seqs, statuses, attempts, run_at, res_refs, none, none, none, none,
    )  # fmt: skip
    in_run: tuple[list[bool], int] | None = None
    if packs == [None, None]:
        entries = list(map(Entry, rows))
        _extras(entries.__getitem__, n, extra, state)
        tasks.live.update(zip(ids, entries, strict=True))
        held = compress(entries, map(_HELD.__contains__, codes))
    else:
        live = [True] * n
        for found in packs:
            if found is not None:
                live = list(map(operator.and_, live, map(operator.not_, found[0])))
        entries = list(map(Entry, compress(rows, live)))
        if extra:
            place = list(accumulate(live))  # a live task's index in ``entries``, plus 1
            _extras(lambda i: entries[place[i] - 1], n, extra, state)
        tasks.live.update(zip(compress(ids, live), entries, strict=True))
        for found in packs:
            if found is not None:
                chosen = "".join(compress(ids, found[0])).encode("ascii")
                start = tasks.table.extend(chosen, b"".join(found[1]))
                if found is packs[1]:
                    in_run = found[0], start  # the waiting ones, at positions from start on
        held = compress(entries, map(_HELD.__contains__, compress(codes, live)))
    _index(state, held, codes, queue_of, run_at, priority, seqs, ids, in_run)
    return n


def _rare(extra: Any) -> set[int]:
    """The tasks that have any of the rarely set fields (checked by ``_extras``)."""
    found: set[int] = set()
    if type(extra) is dict:
        for pairs in extra.values():
            if type(pairs) is list:
                found.update(p[0] for p in pairs if type(p) is list and p and type(p[0]) is int)
    return found


def _extras(entry_at: Callable[[int], Entry], n: int, extra: dict[str, Any], state: State) -> None:
    for key, pairs in extra.items():
        kind = _EXTRA.get(key)
        if kind is None or type(pairs) is not list:
            raise ValueError(f"a malformed snapshot group (field {key!r})")
        slot = FIELDS.index(_SLOT.get(key, key))
        for pair in pairs:
            if not (type(pair) is list and len(pair) == 2 and type(pair[1]) is kind):
                raise ValueError(f"a malformed snapshot group (a {key!r} of {pair!r:.80})")
            i, value = pair
            if type(i) is not int or not 0 <= i < n:
                raise ValueError(f"a malformed snapshot group (a {key!r} of task {i!r})")
            entry_at(i)[slot] = state.name(value) if key == "by" else value


def _index(
    state: State,
    held: Iterator[Entry],
    codes: str,
    queue_of: list[str],
    run_at: list[int],
    priority: list[int],
    seqs: range,
    ids: list[str],
    in_run: tuple[list[bool], int] | None,
) -> None:
    ready = list(map(_READY.__contains__, codes))
    touched = set(queue_of)
    if len(touched) == 1:
        heaps = state.heaps(queue_of[0])
        if in_run is not None and _extend_run(heaps, *in_run, run_at, priority, seqs, ids):
            # The waiting tasks that did not pack (a rarely set field) go to the heap.
            ready = list(map(operator.and_, ready, map(operator.not_, in_run[0])))
        if any(ready):
            # Appended unordered, made a heap again by the next query (``State.settle``):
            # one heapify for the whole snapshot rather than a push per task.
            keys = zip(run_at, map(operator.neg, priority), seqs, ids, strict=True)
            heaps.delayed.extend(compress(keys, ready))
            state.unsettled.add(heaps)
    else:
        every = zip(run_at, map(operator.neg, priority), seqs, ids, queue_of, strict=True)
        for due, neg, seq, tid, queue in compress(every, ready):
            heapq.heappush(state.heaps(queue).delayed, (due, neg, seq, tid))
    for entry in held:
        if entry.lock_by is not None:
            state.held.setdefault(entry.lock_by, set()).add(entry.id)
    for queue in touched:
        state._on_ready(queue)


def _extend_run(
    heaps: QueueHeaps,
    ready: list[bool],
    start: int,
    run_at: list[int],
    priority: list[int],
    seqs: range,
    ids: list[str],
) -> bool:
    """Append the packed waiting tasks of a group (``ready``, at table positions from
    ``start`` on) to the queue's ``Run`` if they go on with it: one priority, in order by
    ``run_at`` then id, after what the run holds already."""
    due = list(compress(run_at, ready))
    if not due:
        return True
    levels = set(compress(priority, ready))
    if len(levels) != 1 or due[0] < 0 or max(due) >= 1 << 63:
        return False
    neg = -levels.pop()
    names = list(compress(ids, ready))
    keys = list(zip(due, names, strict=True))
    if not all(map(operator.le, keys, keys[1:])):
        return False
    run = heaps.run
    if run is None:
        run = heaps.run = Run(neg)
    elif run.neg != neg or (run.due[-1], run.last) > (due[0], names[0]):
        return False
    run.due.extend(due)
    run.seqs.extend(compress(seqs, ready))
    run.pos.extend(range(start, start + len(due)))
    run.last = names[-1]
    return True


def chunks(entries: Iterator[Entry]) -> Iterator[list[Entry]]:
    """``entries`` in snapshot-sized pieces: at most ``CHUNK`` tasks and ``_BYTES`` of payload."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        weight = payload_size(entry._args) + payload_size(entry._res)
        if chunk and (len(chunk) >= CHUNK or size + weight > _BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += weight
    if chunk:
        yield chunk

"""One task as the in-memory index holds it: small, with its payloads left in the file.

The index holds every task of the store, so each one is kept lean: the id is a
plain ``str`` (a ``TaskId`` only when handed out), the queue and worker names
are shared strings, an empty ``meta`` is ``None``, times are whole microseconds.
A payload (``args``, ``res``) read back from the file is not kept either: the
entry holds a *reference*, the offset and length of the record line that
carries it, and reads that line again (one bounded ``pread``) when the task is
handed out. The file is append-only between compactions, so an offset stays
valid until the next one, which rewrites every reference (see ``Source.remap``).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor import Status, Task, TaskId
from conveyor_json.errors import CorruptStore

__all__ = ["Entry", "FIELDS", "Moved", "Source", "payload_size", "ref", "to_us", "from_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_STATUS = {s.value: s for s in Status}
_ID = re.compile(r"[0-9a-v]{26}")
"""A task id as this plugin writes it (``TaskId.parse`` accepts more, and normalises it)."""
_LEN_BITS = 24
"""A reference is ``offset << 24 | length``: a line is at most 8 MiB (2**23 bytes)."""
_LEN_MASK = (1 << _LEN_BITS) - 1

FIELDS = (
    "id",
    "queue",
    "max_attempts",
    "priority",
    "meta",
    "name",
    "_args",
    "src",
    "seq",
    "status",
    "attempt",
    "run_at_us",
    "_res",
    "error",
    "lock_by",
    "token",
    "until",
)
"""The order of an ``Entry``'s fields; the mutable ones (``set``) last, from ``_MUTABLE``."""
_MUTABLE = FIELDS.index("status")


def to_us(when: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, unlike a float)."""
    return (when - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """The inverse of ``to_us``."""
    return _EPOCH + timedelta(microseconds=us)


def ref(offset: int, length: int) -> int:
    """The reference to the record line of ``length`` bytes at ``offset`` in the file."""
    return offset << _LEN_BITS | length


def payload_size(held: bytes | int | None) -> int:
    """About how many bytes a payload (bytes, or a reference to its line) takes in the file."""
    if held is None:
        return 0
    return len(held) if type(held) is bytes else held & _LEN_MASK  # type: ignore[operator]


def _task_id(tid: Any) -> str:
    """The id of a record as a plain ``str``, checked (``ValueError`` if it is not one)."""
    if type(tid) is str and _ID.fullmatch(tid):
        return tid
    return str(TaskId.parse(tid))


class Source:
    """Where payload references point: the store file open as ``fd``.

    ``decode`` is ``records.decode`` (passed in: records imports nothing of the index).
    """

    __slots__ = ("decode", "fd", "path")

    def __init__(self, path: str, decode: Any) -> None:
        self.path = path
        self.fd = -1
        self.decode = decode

    def line(self, where: int) -> bytes:
        """The record line ``where`` refers to (one bounded read)."""
        offset, length = where >> _LEN_BITS, where & _LEN_MASK
        line = os.pread(self.fd, length, offset)
        if len(line) != length:
            raise CorruptStore(
                f"{self.path}: the record at byte {offset} is cut short; was the file changed"
                " by something other than conveyor? Reopen the store"
            )
        return line

    def payload(self, where: int, key: str) -> bytes | None:
        """The payload ``key`` of the record line ``where`` refers to."""
        line = self.line(where)
        try:
            value = self.decode(line).get(key)
        except ValueError as exc:
            raise CorruptStore(
                f"{self.path}: the record at byte {where >> _LEN_BITS} no longer reads back"
                f" ({exc}); was the file changed by something other than conveyor? Reopen the store"
            ) from None
        return value if type(value) is bytes else None


class Entry(list[Any]):
    """One task as stored; mutable so that a state change does not rebuild it.

    A ``list`` of its fields in a fixed order (see ``FIELDS``), so that a
    snapshot of many tasks is built by ``map(Entry, zip(*columns))`` at C
    speed, with no Python call per task; the properties name the fields.
    ``_args`` and ``_res`` are the payload bytes, or an ``int`` reference into
    ``src`` (see the module docstring); read them through ``args`` and ``result``.
    """

    __slots__ = ()

    @classmethod
    def of(cls, record: dict[str, Any], seq: int, src: Source | None, names: Any) -> Entry:
        """The entry of a ``put`` record (``ValueError`` if a field is missing or mistyped)."""
        tid, args, queue = record["id"], record["args"], record["q"]
        max_attempts, priority = record["ma"], record["p"]
        meta = record.get("meta") or None
        name = record.get("name")
        if not (
            (type(args) is bytes or type(args) is int)
            and type(queue) is str
            and type(max_attempts) is int
            and type(priority) is int
            and (meta is None or isinstance(meta, dict))
            and (name is None or type(name) is str)
        ):
            raise ValueError(f"a task record has a missing or mistyped field: {record!r:.200}")
        entry = cls(
            (_task_id(tid), names(queue), max_attempts, priority, meta, name, args, src,
             seq, None, 0, 0, None, None, None, None, None)
        )  # fmt: skip
        entry.set(record, names)
        return entry

    def set(self, record: dict[str, Any], names: Any) -> None:
        """Take the mutable fields (status, attempt, run_at, lease, outcome) from ``record``."""
        get = record.get
        status = _STATUS[record["s"]]
        attempt, run_at_us = record["a"], record["at"]
        result, error, lock_by, token, until = (
            get("res"), get("err"), get("by"), get("tok"), get("until")
        )  # fmt: skip
        # One check for the common shapes; the precise complaint only when it fails.
        if not (
            type(attempt) is int
            and type(run_at_us) is int
            and (result is None or type(result) is bytes or type(result) is int)
            and (error is None or type(error) is str)
            and (lock_by is None or type(lock_by) is str)
            and (token is None or type(token) is str)
            and (until is None or type(until) is int)
        ):
            raise ValueError(f"a field of the record has the wrong type: {record!r:.200}")
        if lock_by is not None:
            lock_by = names(lock_by)
        self[_MUTABLE:] = (status, attempt, run_at_us, result, error, lock_by, token, until)

    @property
    def id(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def queue(self) -> str:
        return self[1]  # type: ignore[no-any-return]

    @queue.setter
    def queue(self, value: str) -> None:
        self[1] = value

    @property
    def max_attempts(self) -> int:
        return self[2]  # type: ignore[no-any-return]

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        self[2] = value

    @property
    def priority(self) -> int:
        return self[3]  # type: ignore[no-any-return]

    @priority.setter
    def priority(self, value: int) -> None:
        self[3] = value

    @property
    def meta(self) -> dict[str, Any] | None:
        return self[4]  # type: ignore[no-any-return]

    @meta.setter
    def meta(self, value: dict[str, Any] | None) -> None:
        self[4] = value

    @property
    def name(self) -> str | None:
        return self[5]  # type: ignore[no-any-return]

    @name.setter
    def name(self, value: str | None) -> None:
        self[5] = value

    @property
    def _args(self) -> bytes | int:
        return self[6]  # type: ignore[no-any-return]

    @_args.setter
    def _args(self, value: bytes | int) -> None:
        self[6] = value

    @property
    def src(self) -> Source | None:
        return self[7]  # type: ignore[no-any-return]

    @src.setter
    def src(self, value: Source | None) -> None:
        self[7] = value

    @property
    def seq(self) -> int:
        return self[8]  # type: ignore[no-any-return]

    @seq.setter
    def seq(self, value: int) -> None:
        self[8] = value

    @property
    def status(self) -> Status:
        return self[9]  # type: ignore[no-any-return]

    @status.setter
    def status(self, value: Status) -> None:
        self[9] = value

    @property
    def attempt(self) -> int:
        return self[10]  # type: ignore[no-any-return]

    @attempt.setter
    def attempt(self, value: int) -> None:
        self[10] = value

    @property
    def run_at_us(self) -> int:
        return self[11]  # type: ignore[no-any-return]

    @run_at_us.setter
    def run_at_us(self, value: int) -> None:
        self[11] = value

    @property
    def _res(self) -> bytes | int | None:
        return self[12]  # type: ignore[no-any-return]

    @_res.setter
    def _res(self, value: bytes | int | None) -> None:
        self[12] = value

    @property
    def error(self) -> str | None:
        return self[13]  # type: ignore[no-any-return]

    @error.setter
    def error(self, value: str | None) -> None:
        self[13] = value

    @property
    def lock_by(self) -> str | None:
        return self[14]  # type: ignore[no-any-return]

    @lock_by.setter
    def lock_by(self, value: str | None) -> None:
        self[14] = value

    @property
    def token(self) -> str | None:
        return self[15]  # type: ignore[no-any-return]

    @token.setter
    def token(self, value: str | None) -> None:
        self[15] = value

    @property
    def until(self) -> int | None:
        return self[16]  # type: ignore[no-any-return]

    @until.setter
    def until(self, value: int | None) -> None:
        self[16] = value

    @property
    def args(self) -> bytes:
        """The task's payload (read from the file if it was left there)."""
        args = self._args
        if type(args) is bytes:
            return args
        found = self._read(args, "args")  # type: ignore[arg-type]
        if found is None:
            raise ValueError(f"{self.src and self.src.path}: task {self.id} has no args")
        return found

    @property
    def result(self) -> bytes | None:
        """The task's result, if any (read from the file if it was left there)."""
        res = self._res
        if res is None or type(res) is bytes:
            return res
        return self._read(res, "res")  # type: ignore[arg-type]

    def _read(self, where: int, key: str) -> bytes | None:
        if self.src is None:
            raise ValueError(f"task {self.id}: its payload is in a file no longer open")
        return self.src.payload(where, key)

    def task(self) -> Task[bytes]:
        """The task as hooks hand it out."""
        until = None if self.until is None else from_us(self.until)
        return Task(
            TaskId.parse(self.id), self.args, self.queue, self.status, self.attempt,
            self.max_attempts, from_us(self.run_at_us), self.priority, self.result, self.error,
            self.lock_by, self.token, until, self.meta or {}, self.name,
        )  # fmt: skip

    def put_record(self) -> dict[str, Any]:
        """The full record that recreates this task (compaction, ``update``)."""
        return {
            "op": "put", "id": self.id, "q": self.queue, "s": self.status.value,
            "a": self.attempt, "ma": self.max_attempts, "at": self.run_at_us,
            "p": self.priority, "meta": self.meta, "args": self.args,
            "res": self.result, "err": self.error, "by": self.lock_by, "tok": self.token,
            "until": self.until, "name": self.name,
        }  # fmt: skip


Moved = list[tuple[Entry | str, int, int | None]]
"""What a compaction rewrote: each task (a packed one by its id) with its payloads' new
references, applied by ``State.remap`` once the new file has replaced the old."""

"""The packed tasks by id: an open-addressing hash table over two shared buffers.

A dict of ``str`` ids to ``bytes`` rows costs about 200 bytes a task in objects
(the id, the row, the dict slot), more than the file holds for it. Here a task
is at one *position* in two ``bytearray`` columns, its 26-byte ASCII id in
``ids`` and its ``ROW``-byte packed row (see ``packed``) in ``rows``, and the
index is an ``array('i')`` of positions (``-1`` for an empty slot), a power of two
long and at most 70% full, probed linearly from the id's ``hash()``. About 75
bytes a task in all, and no object a task for the cycle collector.

A removal shifts the rest of its probe cluster back (no tombstones, so lookups
never slow down with churn); its position goes on a free list and its row's
status byte becomes ``FREE``, which a stale reference (a ``Run``'s) can see.
Positions never move, so a ``Run`` may hold them. Rows added in bulk (a
snapshot group, ``extend``) are indexed by the next lookup, in one pass.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from itertools import compress

__all__ = ["FREE", "ID", "ROW", "Table", "fits"]

ID = 26
ROW = 41
FREE = 0xFF
"""The status byte of a free position."""
_MIN = 8
_FULL_TENTHS = 7


def fits(tid: str) -> bool:
    """Whether ``tid`` can be held in the table: 26 ASCII characters."""
    return len(tid) == ID and tid.isascii()


def _capacity(count: int) -> int:
    size = _MIN
    while count * 10 > size * _FULL_TENTHS:
        size *= 2
    return size


class Table:
    """Rows by id; a row is at a fixed position from ``add`` (or ``extend``) to ``pop``."""

    __slots__ = ("_free", "_index", "_indexed", "_used", "ids", "rows")

    def __init__(self) -> None:
        self.ids = bytearray()
        self.rows = bytearray()
        self._index = array("i", [-1]) * _MIN
        self._free = array("i")
        self._used = 0
        self._indexed = 0
        """Positions below this one are in the index (those added by ``extend`` are not yet)."""

    def __len__(self) -> int:
        if self._indexed * ROW < len(self.rows):
            self._reindex(self._used)  # a repeated id in what ``extend`` added counts once
        return self._used

    @property
    def capacity(self) -> int:
        """The index's slots (a power of two; at most 70% of them are used)."""
        return len(self._index)

    def tid(self, pos: int) -> str:
        """The id at ``pos``."""
        return self.ids[pos * ID : pos * ID + ID].decode("ascii")

    def row(self, pos: int) -> bytes:
        """The row at ``pos``."""
        return bytes(self.rows[pos * ROW : pos * ROW + ROW])

    def set_row(self, pos: int, row: bytes) -> None:
        """Replace the row at ``pos``."""
        self.rows[pos * ROW : pos * ROW + ROW] = row

    def _probe(self, tid: str, adding: bool) -> tuple[int, int]:
        """The index slot holding ``tid`` and its position, or the empty slot where it would
        go and ``-1``. The index is brought up to date first (rows added in bulk, and room
        for one more when ``adding``): the caller must read ``_index`` only after this."""
        if self._indexed * ROW < len(self.rows) or (
            adding and (self._used + 1) * 10 > len(self._index) * _FULL_TENTHS
        ):
            self._reindex(self._used + adding)
        index = self._index
        mask = len(index) - 1
        ids = self.ids
        i = hash(tid) & mask
        key = b""
        while True:
            pos = index[i]
            if pos < 0:
                return i, -1
            if not key:
                key = tid.encode("ascii")
            if ids.startswith(key, pos * ID):
                return i, pos
            i = (i + 1) & mask

    def find(self, tid: str) -> int:
        """The position of ``tid``, or ``-1``."""
        if not fits(tid):
            return -1
        return self._probe(tid, False)[1]

    def add(self, tid: str, row: bytes) -> int:
        """Hold ``row`` as the row of ``tid`` (which must ``fit``); return its position."""
        slot, pos = self._probe(tid, True)
        if pos >= 0:
            self.set_row(pos, row)
            return pos
        key = tid.encode("ascii")
        if self._free:
            pos = self._free.pop()
            self.ids[pos * ID : pos * ID + ID] = key
            self.set_row(pos, row)
        else:
            pos = len(self.rows) // ROW
            self.ids += key
            self.rows += row
            self._indexed = pos + 1
        self._index[slot] = pos
        self._used += 1
        return pos

    def pop(self, tid: str) -> bytes | None:
        """Remove ``tid``; return its row (``None`` if it is not held)."""
        if not fits(tid):
            return None
        slot, pos = self._probe(tid, False)
        if pos < 0:
            return None
        row = self.row(pos)
        self._unlink(slot)
        self._release(pos)
        return row

    def _release(self, pos: int) -> None:
        self.rows[pos * ROW] = FREE
        self._free.append(pos)
        self._used -= 1

    def _unlink(self, slot: int) -> None:
        """Empty index ``slot``, moving back each later entry of its cluster whose probe
        passes the hole (so that every entry stays reachable from its home slot)."""
        index = self._index
        mask = len(index) - 1
        ids = self.ids
        hole = j = slot
        while True:
            j = (j + 1) & mask
            pos = index[j]
            if pos < 0:
                break
            home = hash(ids[pos * ID : pos * ID + ID].decode("ascii")) & mask
            if (j - home) & mask >= (j - hole) & mask:
                index[hole] = pos
                hole = j
        index[hole] = -1

    def extend(self, ids: bytes, rows: bytes) -> int:
        """Append rows (``ids`` their ids, ``ID`` bytes each, all of them new) without
        indexing them yet; return the first one's position (the rest follow it)."""
        start = len(self.rows) // ROW
        self.ids += ids
        self.rows += rows
        self._used += len(rows) // ROW
        return start

    def positions(self) -> Iterator[int]:
        """The position of every row held."""
        return compress(range(len(self.rows) // ROW), map(FREE.__ne__, self.rows[::ROW]))

    def items(self) -> Iterator[tuple[int, str, bytes]]:
        """``(position, id, row)`` of every row held."""
        for pos in self.positions():
            yield pos, self.tid(pos), self.row(pos)

    def drop(self, statuses: frozenset[int]) -> int:
        """Remove every row whose status byte is in ``statuses``; return how many."""
        dropped = [p for p, s in enumerate(self.rows[::ROW]) if s in statuses]
        for pos in dropped:
            self._release(pos)
        self._index = array("i", [-1]) * _MIN
        self._indexed = 0  # every position is indexed again, in one pass
        return len(dropped)

    def _reindex(self, count: int) -> None:
        """Index what ``extend`` added, in a new index if ``count`` rows need a larger one.

        Growing is one pass over every row: a pause of about 0.5 µs a task, once each
        time the table doubles."""
        size = _capacity(count)
        ends = len(self.rows) // ROW
        if size == len(self._index):
            index = self._index
            todo = range(self._indexed, ends)
        else:
            index = self._index = array("i", [-1]) * size
            todo = range(ends)
        self._indexed = ends
        mask = size - 1
        ids, rows = self.ids, self.rows
        for pos in todo:
            if rows[pos * ROW] == FREE:
                continue
            key = ids[pos * ID : pos * ID + ID]
            i = hash(key.decode("ascii")) & mask
            while True:
                held = index[i]
                if held < 0:
                    break
                if ids.startswith(key, held * ID):
                    # The same id twice in a hand-made snapshot: the later one stands,
                    # as it did when the tasks were a dict.
                    self._release(held)
                    break
                i = (i + 1) & mask
            index[i] = pos

"""A run: waiting tasks already in claim order, held as columns beside a queue's heaps."""

from __future__ import annotations

from array import array

__all__ = ["Run"]


class Run:
    """Waiting tasks of one priority already in order (by ``run_at_us``, then id), as a
    snapshot lists them: three columns and a head instead of a heap entry each (a tuple
    and two integers, about 130 bytes a task). Entries go stale as in a heap."""

    __slots__ = ("due", "head", "ids", "neg", "seqs")

    def __init__(self, neg: int) -> None:
        self.neg = neg
        self.due = array("q")
        self.seqs = array("q")
        self.ids: list[str] = []
        self.head = 0

    def key(self) -> tuple[int, int, str, int]:
        """The head's ready-heap key."""
        head = self.head
        return (self.neg, self.due[head], self.ids[head], self.seqs[head])

"""A run: waiting tasks already in claim order, held as columns beside a queue's heaps."""

from __future__ import annotations

from array import array
from collections.abc import Callable

__all__ = ["Run"]


class Run:
    """Waiting packed tasks of one priority already in order (by ``run_at_us``, then id), as a
    snapshot lists them: their table positions (see ``table``) in three columns and a head,
    20 bytes a task instead of a heap entry each (a tuple, two integers and the id, about
    130 bytes). Entries go stale as in a heap: a position whose row is no longer waiting
    under the same ``seq``."""

    __slots__ = ("due", "head", "last", "neg", "pos", "seqs")

    def __init__(self, neg: int) -> None:
        self.neg = neg
        self.due = array("q")
        self.seqs = array("q")
        self.pos = array("i")
        self.last = ""
        """The id of the last task: where the next group must start to go on with the run."""
        self.head = 0

    def __len__(self) -> int:
        return len(self.pos)

    def key(self, tid_at: Callable[[int], str]) -> tuple[int, int, str, int]:
        """The head's ready-heap key (``tid_at`` names the task at a position)."""
        head = self.head
        return (self.neg, self.due[head], tid_at(self.pos[head]), self.seqs[head])

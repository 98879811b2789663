"""Thread-side group commit: the durable writes of threads that block for the disk, made by one.

When an event loop has nothing else to run (a thread with one producer), a
durable write blocks its thread until its record is on disk
(``GroupCommit.inline``). Threads that do so at the same time gather. The
first becomes the *leader*: it takes the lock once for every write waiting,
runs their sections in the order they came, appends all their records with one
``write``, releases the lock, and waits for one fsync covering them
(``FileSync.sync_to``). The others block on a lock of their own (not on the
store's lock, not on the disk) until the leader has seen their record on disk,
and wake once. Writes that arrive meanwhile wait for the next batch, led by the
first of them, whom the leader wakes when its own batch is on disk. So each
batch costs one lock, one ``stat``, one ``write`` and one fsync, and a thread
sleeps and wakes once per write instead of queueing for the lock behind others
that each wait for the interpreter between their system calls.

A leader waits in its thread (whose loop has nothing to run) for another
thread's section at most the lock's spin, and never for another process: then
it gives the batch back, and every write of it takes the event-loop path
(``Journal.run``), which waits in a thread while its loop goes on.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from conveyor_json.commit import FileSync
from conveyor_json.lock import StoreLock
from conveyor_json.state import State

__all__ = ["FALLBACK", "Combining"]

FALLBACK: Final = object()
"""``combine``'s answer when the write was not made: make it through ``Journal.run``."""

_WAITING, _LEAD, _WRITTEN, _DONE, _FAILED = range(5)


class _Slot:
    """One write waiting in a batch, and what became of it."""

    __slots__ = ("error", "gone", "mark", "next", "result", "section", "stage", "wake")

    def __init__(self, section: Any) -> None:
        self.section = section
        self.stage = _WAITING
        self.result: Any = None
        self.error: BaseException | None = None
        self.mark = 0
        self.wake: threading.Lock | None = None  # a follower's, released once
        self.next: _Slot | None = None  # the follower it wakes once it is awake itself
        self.gone = False  # interrupted while it waited

    def fail(self, error: BaseException) -> None:
        self.stage, self.error = _FAILED, error


class Combining:
    """The thread-side group commit of a ``Journal`` (a base of it, for what it declares)."""

    path: str
    lock: StoreLock
    commit: FileSync
    state: State
    broken: str | None
    _gate: threading.Lock  # guards the next batch and who leads
    _queue: list[_Slot]
    _leading: bool

    def _usable(self) -> None:
        raise NotImplementedError

    def _locked(self, section: Any) -> tuple[Any, int]:
        raise NotImplementedError

    def _catch_up(self) -> None:
        raise NotImplementedError

    def _encoded(self, new: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError

    def _write_out(self, data: bytes) -> None:
        raise NotImplementedError

    def _apply(self, new: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _compact_due(self) -> bool:
        raise NotImplementedError

    def _auto_compact(self, dead: int) -> None:
        raise NotImplementedError

    def combine(self, section: Any) -> Any:
        """Run ``section`` (a ``journal.Section``) and block until its records are on disk;
        return its result, or ``FALLBACK`` (nothing done: use ``Journal.run``)."""
        gate = self._gate
        gate.acquire()  # (no ``with``: this is the lone producer's path too)
        if not self._leading:
            # Nobody leads, so nobody waits (a waiting write always has a leader): this
            # write goes alone, and writes arriving meanwhile wait for the next batch.
            self._leading = True
            gate.release()
            try:
                return self._alone(section)
            finally:
                self._hand_over()
        slot = _Slot(section)
        self._queue.append(slot)
        wake = slot.wake = threading.Lock()
        wake.acquire()
        gate.release()
        try:
            wake.acquire()
        except BaseException:
            self._abandon(slot)
            raise
        if slot.next is not None:
            self._wake(slot.next)
        if slot.stage != _LEAD:
            return self._outcome(slot)
        self._lead(slot)
        return self._outcome(slot)

    def _alone(self, section: Any) -> Any:
        """One write, nobody waiting with it: the section's own errors are raised here."""
        lock = self.lock
        if not (lock.enter_now() or lock.enter_soon()):
            return FALLBACK
        try:
            result, mark = self._locked(section)
        finally:
            lock.release()
        self.commit.sync_to(mark)
        return result

    def _abandon(self, slot: _Slot) -> None:
        # Interrupted while it waited (a signal in the main thread): a write still waiting
        # is not made, a lead just handed to it goes on to the next, and so does its turn
        # to wake the next follower of its batch.
        with self._gate:
            lead = slot.stage == _LEAD
            if slot in self._queue:
                self._queue.remove(slot)
            if lead:
                slot.stage = _WAITING
            assert slot.wake is not None
            woken = slot.wake.acquire(blocking=False)  # released before it could take it
            slot.gone = True
        if lead:
            self._hand_over()
        elif woken and slot.next is not None:
            self._wake(slot.next)

    def _wake(self, slot: _Slot) -> None:
        """Wake ``slot``'s thread, or the first after it still waiting (under the gate, so
        that one interrupted meanwhile either is skipped here or passes its turn on)."""
        with self._gate:
            follower: _Slot | None = slot
            while follower is not None and follower.gone:
                follower = follower.next
            if follower is not None:
                assert follower.wake is not None
                follower.wake.release()

    def _outcome(self, slot: _Slot) -> Any:
        stage = slot.stage
        if stage == _DONE:
            return slot.result
        if stage == _WRITTEN:  # its leader stopped before the fsync: make it here
            self.commit.sync_to(slot.mark)
            return slot.result
        if stage == _FAILED:
            assert slot.error is not None
            raise slot.error
        return FALLBACK

    def _lead(self, own: _Slot) -> None:
        with self._gate:
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        finally:
            self._hand_over()
            # Each follower wakes the next once it runs, so that they do not all wake at
            # once to queue for the interpreter (a context switch more a push).
            first: _Slot | None = None
            for slot in reversed(batch):
                if slot.stage == _WAITING or slot.stage == _LEAD:
                    slot.stage = _WAITING  # never reached (the leader was interrupted)
                if slot is not own:
                    slot.next, first = first, slot
            if first is not None:
                self._wake(first)

    def _hand_over(self) -> None:
        """Wake the first write waiting to lead the next batch, or stop leading."""
        with self._gate:
            if not self._queue:
                self._leading = False
                return
            first = self._queue[0]
            first.stage = _LEAD
        assert first.wake is not None
        first.wake.release()

    def _commit(self, batch: list[_Slot]) -> None:
        lock = self.lock
        if not (lock.enter_now() or lock.enter_soon()):
            return  # every slot stays _WAITING: FALLBACK
        try:
            mark = self._locked_batch(batch)
        finally:
            lock.release()
        if not mark:
            return
        try:
            self.commit.sync_to(mark)
        except Exception as exc:
            for slot in batch:
                if slot.stage == _WRITTEN:
                    slot.fail(exc)
            return
        for slot in batch:
            if slot.stage == _WRITTEN:
                slot.stage = _DONE

    def _locked_batch(self, batch: list[_Slot]) -> int:
        """Under the lock: each section in turn on the state its predecessors left, then
        one write of all their records (each operation framed on its own). Returns the
        mark to sync to, 0 when no section succeeded."""
        try:
            self._usable()
            self._catch_up()
        except Exception as exc:
            for slot in batch:
                slot.fail(exc)
            return 0
        state, encoded, apply = self.state, self._encoded, self._apply
        chunks: list[bytes] = []
        done = 0
        try:
            for slot in batch:
                try:
                    new, slot.result = slot.section(state)
                    data = encoded(new) if new else b""
                except Exception as exc:
                    slot.fail(exc)
                    continue
                if data:
                    # Applied before the write so that the next section sees it; if the
                    # write fails the journal is broken and this state is never used again.
                    apply(new)
                    chunks.append(data)
                slot.stage = _WRITTEN
                done += 1
            if chunks:
                self._write_out(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except Exception as exc:  # the journal broke: nothing of the batch is acknowledged
            for slot in batch:
                if slot.stage != _FAILED:
                    slot.fail(exc)
            return 0
        except BaseException:
            # Interrupted between a section and the write: the state may hold records the
            # file does not, so the handle is not used again.
            self.broken = (
                f"a write to {self.path} was interrupted; what reached the file is unknown,"
                " so the store is reopened"
            )
            raise
        if not done:
            return 0
        mark = self.commit.written  # every write so far: what the sections saw is on disk
        for slot in batch:
            slot.mark = mark
        if self._compact_due():
            self._auto_compact(self.state.dead)
        return mark

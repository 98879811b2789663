"""One open journal per store file per process, shared by every backend, thread and loop.

Backends opened on one store in one process (sixteen threads each opening their
own, say) share one ``Journal``: one in-memory index, one lock file descriptor
behind one mutex, and one group commit, so a thread's fsync covers the others'
appends and nobody replays what another thread of the process wrote. A store is
known by its lock file's ``(st_dev, st_ino)`` (the lock file outlives a
compaction, which replaces the store file itself). A journal that broke is
never handed out again: the next opener gets a fresh one. A forked child
forgets the parent's journals (their ``flock`` is the parent's open file) and
opens its own.
"""

from __future__ import annotations

import os
import threading

from conveyor_json.journal import Journal

__all__ = ["open_journal", "release"]

_lock = threading.Lock()
_open: dict[tuple[int, int], Journal] = {}


def _forget() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _open.clear()


os.register_at_fork(after_in_child=_forget)


def _usable(journal: Journal | None) -> bool:
    return journal is not None and journal.broken is None and not journal.closed


def open_journal(path: str, *, compact_threshold: int, lock_timeout: float) -> Journal:
    """The journal of the store at ``path``: the open one, caught up, or a new one.

    Pair every call with ``release``. ``compact_threshold``: the lowest that
    any user asked for applies (a lower one only compacts sooner).
    """
    full = os.path.abspath(os.path.expanduser(path))
    try:
        info = os.lstat(full + ".lock")  # a link there is nobody's lock file: no match
        key: tuple[int, int] | None = (info.st_dev, info.st_ino)
    except OSError:
        key = None
    with _lock:
        journal = _open.get(key) if key is not None else None
        if journal is not None and _usable(journal):
            journal.users += 1
        else:
            journal = None
    if journal is not None:
        try:
            journal.join(lock_timeout)
        except BaseException:
            release(journal)
            raise
        journal.compact_threshold = min(journal.compact_threshold, compact_threshold)
        return journal
    fresh = Journal(path, compact_threshold=compact_threshold, lock_timeout=lock_timeout)
    with _lock:
        journal = _open.get(fresh.key)
        if _usable(journal):
            assert journal is not None
            journal.users += 1
        else:
            _open[fresh.key] = journal = fresh
            fresh.users += 1
    if journal is not fresh:
        fresh.close()  # another thread opened it meanwhile: share that one
    return journal


def release(journal: Journal) -> None:
    """One user fewer; close the journal after its last."""
    with _lock:
        journal.users -= 1
        if journal.users > 0:
            return
        if _open.get(journal.key) is journal:
            del _open[journal.key]
    journal.close()

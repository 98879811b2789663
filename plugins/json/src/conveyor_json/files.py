"""Opening and creating the store's files without following links, and keeping their owner.

Every file the store creates (a new store, its lock file, a compaction's
temporary copy, a repair's backup) is created with ``O_CREAT|O_EXCL|O_NOFOLLOW``
or opened with ``O_NOFOLLOW``: a link planted in the store's directory is never
followed, so it cannot aim a write at another file. The store path itself must
not be a symbolic link (the folders above it may be).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import stat

from conveyor_json.errors import LinkRefused, NotOwner, StoreError

__all__ = [
    "MODE",
    "refuse_link",
    "open_store",
    "open_lock",
    "create_exclusive",
    "temp_name",
    "remove_stale_temps",
    "owner_check",
    "give_back",
    "fsync_dir",
]

log = logging.getLogger("conveyor.json")

MODE = 0o600
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def refuse_link(path: str) -> None:
    """``LinkRefused`` if ``path`` is a symbolic link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise LinkRefused(
            f"the store path {path} is a symbolic link (to {os.readlink(path)!r}); conveyor-json"
            " refuses links, since whoever can change the link could redirect the store's"
            f" writes. Point the backend at the real file: {os.path.realpath(path)}"
        )


def _link_error(path: str, exc: OSError) -> StoreError | None:
    if exc.errno == errno.ELOOP:
        return LinkRefused(
            f"{path} is a symbolic link; conveyor-json never follows a link for a file of"
            " the store. Remove the link"
        )
    return None


def open_store(path: str) -> int:
    """The store file, for reading and appending; never through a link."""
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND | _NOFOLLOW)
    except OSError as exc:
        raise _link_error(path, exc) or StoreError(
            f"cannot open store {path} for reading and writing: {exc.strerror}"
        ) from None


def open_lock(lock_path: str, store_path: str) -> int:
    """The lock file, created (mode 0600, the store's owner) if missing; never a link."""
    folder = os.path.dirname(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _link_error(lock_path, exc) or StoreError(
            f"cannot create the lock file {lock_path}: {exc.strerror}; the store's directory"
            f" {folder} must be writable by this user"
        ) from None
    else:
        # Root creating the lock of another user's store gives it to that user.
        try:
            info = os.lstat(store_path)
        except FileNotFoundError:
            return fd
        give_back(fd, info)
        return fd
    try:
        return os.open(lock_path, os.O_RDWR | _NOFOLLOW)
    except OSError as exc:
        error = _link_error(lock_path, exc)
        if error is not None:
            raise error from None
        owner = ""
        try:
            info = os.lstat(lock_path)
            owner = f" (owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})"
        except OSError:
            pass
        raise StoreError(
            f"cannot open the lock file {lock_path}{owner} for writing: {exc.strerror};"
            f" run as the store's owner or give the lock file to this user (uid {os.geteuid()})"
        ) from None


def create_exclusive(path: str, mode: int) -> int:
    """A new file at ``path``, for writing; fails if anything (a link too) is there."""
    folder = os.path.dirname(path)
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except FileExistsError:
        raise StoreError(
            f"cannot create {path}: something is already there (a file or a link planted in"
            f" {folder}?); conveyor-json never writes through an existing name. Remove it"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot create {path}: {exc.strerror}; the store's directory {folder} must be"
            " writable by this user"
        ) from None


def temp_name(path: str) -> str:
    """A fresh name for a compaction's temporary copy of ``path``."""
    return f"{path}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def remove_stale_temps(path: str) -> list[str]:
    """Remove compaction copies of ``path`` left by killed processes (call under the lock,
    when no compaction can be running); return what was removed."""
    folder, base = os.path.split(path)
    pattern = re.compile(re.escape(base) + r"\.\d+(-[0-9a-f]{8})?\.tmp")
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if pattern.fullmatch(name):
            stale = os.path.join(folder, name)
            try:
                os.unlink(stale)  # unlink removes a link itself, never its target
            except OSError:
                continue
            log.warning("removed %s, left behind by a compaction that was killed", stale)
            removed.append(stale)
    return removed


def owner_check(path: str, info: os.stat_result) -> None:
    """``NotOwner`` unless this process can rewrite ``path`` and keep its owner."""
    euid = os.geteuid()
    if euid != 0 and info.st_uid != euid:
        raise NotOwner(
            f"cannot compact {path}: it is owned by uid {info.st_uid}, not this user"
            f" (uid {euid}); the compacted copy would belong to uid {euid} and lock its owner"
            " out. Run vacuum as the store's owner (or as root, which keeps the owner)"
        )


def give_back(fd: int, info: os.stat_result) -> None:
    """Give the file open as ``fd`` the owner and group in ``info`` (as far as allowed)."""
    if os.geteuid() == 0:
        os.fchown(fd, info.st_uid, info.st_gid)
        return
    try:
        os.fchown(fd, -1, info.st_gid)  # a member of the group may keep it
    except OSError:
        pass


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

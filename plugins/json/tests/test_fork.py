"""A forked child (gunicorn --preload, multiprocessing's fork) using the store after its parent."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import time
from pathlib import Path

import pytest

import conveyor

LOCK_TIMEOUT = 10.0


def _waits_in_flock(lock_file: Path, pid: int) -> bool:
    """Whether ``pid`` sits in ``flock`` on ``lock_file`` (a "->" line of /proc/locks)."""
    inode = os.stat(lock_file).st_ino
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if "->" in fields and fields[5] == str(pid) and fields[6].endswith(f":{inode}"):
                return True
    return False


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_a_forked_child_waits_for_the_lock_and_stores_its_push(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    url = f"json://{path}?lock_timeout={LOCK_TIMEOUT:g}"
    lock_file = Path(f"{path}.lock")

    async def parent_waits_once() -> None:
        # The parent's push waits for a lock another descriptor holds, so the
        # process's lock-wait threads exist (and sit idle) when it forks.
        async with conveyor.open(url) as backend:
            await backend.push({"who": "parent", "n": 0})
            holder = os.open(lock_file, os.O_RDWR)
            fcntl.flock(holder, fcntl.LOCK_EX)
            asyncio.get_running_loop().call_later(0.05, os.close, holder)
            await backend.push({"who": "parent", "n": 1})

    asyncio.run(parent_waits_once())
    read, write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own handle, one push, the id (or the error) on the pipe
        code = 1
        try:
            os.close(read)
            os.close(go_write)

            async def push() -> str:
                async with conveyor.open(url) as backend:  # opening takes the lock too
                    os.write(write, b"open ")
                    os.read(go_read, 1)  # the parent holds the lock now
                    return str(await backend.push({"who": "child"}))

            os.write(write, asyncio.run(push()).encode())
            code = 0
        except BaseException as exc:
            os.write(write, f"ERROR {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write)
    os.close(go_read)
    holder = -1
    try:
        assert os.read(read, 5) == b"open "
        holder = os.open(lock_file, os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # the child's push must wait for this
        os.write(go_write, b"!")
        # Let go once the child waits in flock (or at the deadline: a child whose
        # wait never reaches flock reports LockTimeout, and the test fails on it).
        deadline = time.monotonic() + LOCK_TIMEOUT * 2
        while not _waits_in_flock(lock_file, pid) and time.monotonic() < deadline:
            if select.select([read], [], [], 0.01)[0]:
                break  # the child finished (or failed) without waiting
        os.close(holder)
        holder = -1
        reported = b""
        while chunk := os.read(read, 65536):
            reported += chunk
    finally:
        for fd in (read, go_write, holder):
            if fd >= 0:
                os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, reported.decode()

    async def stored() -> object:
        async with conveyor.open(url) as backend:
            task = await backend.fetch_by_id(reported.decode())
            return None if task is None else task.args

    assert asyncio.run(stored()) == {"who": "child"}

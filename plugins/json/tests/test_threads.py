"""Threads of one process, each with its own backend on one store: one shared journal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import conveyor
from conveyor import Done, Filter, WorkerInfo

THREADS = 8
PER = 15


def test_backends_of_one_process_share_one_journal(tmp_path: Path) -> None:
    url = f"json://{tmp_path}/tasks.json"

    async def both() -> None:
        a, b = conveyor.open(url), conveyor.open(url)
        assert a.plugin.journal is b.plugin.journal  # type: ignore[attr-defined]
        await a.push({"n": 1})
        await b.aclose()
        assert len(await a.list_all_tasks()) == 1  # still open for the other user
        first = a.plugin.journal  # type: ignore[attr-defined]
        await a.aclose()
        again = conveyor.open(url)
        assert again.plugin.journal is not first and first.closed  # type: ignore[attr-defined]
        await again.aclose()

    asyncio.run(both())


def test_threads_pushing_each_with_a_backend_share_fsyncs_and_each_push_is_on_disk(
    tmp_path: Path, slow_disk: Any, in_threads: Callable[[int, Callable[[int], None]], None]
) -> None:
    path = tmp_path / "tasks.json"
    url = f"json://{path}"
    synced = slow_disk.synced  # the file's size when each fsync started
    asyncio.run(conveyor.open(url).aclose())
    start = threading.Barrier(THREADS)
    late: list[str] = []
    pushed: list[str] = []

    def producer(k: int) -> None:
        async def run() -> None:
            async with conveyor.open(url) as backend:
                start.wait()
                for i in range(PER):
                    tid = await backend.push({"k": k, "i": i})
                    data = path.read_bytes()
                    end = data.index(b"\n", data.index(tid.encode())) + 1
                    if max(synced) < end:
                        late.append(tid)  # returned before an fsync covered it
                    pushed.append(tid)

        asyncio.run(run())

    in_threads(THREADS, producer)
    assert not late
    assert len(pushed) == THREADS * PER
    assert len(synced) < THREADS * PER  # one thread's fsync covered others' pushes

    async def stored() -> set[str]:
        async with conveyor.open(url) as backend:
            return {t.id for t in await backend.list_all_tasks(Filter(page_size=1000))}

    assert asyncio.run(stored()) == set(pushed)


def test_a_poll_waiting_in_one_thread_wakes_for_a_push_of_another(tmp_path: Path) -> None:
    # Other processes' pushes are polled for every poll_interval (60 s here, and no other
    # timer runs in the waiting loop); a push of another thread of this process must
    # wake the waiting poll at once.
    url = f"json://{tmp_path}/tasks.json?idle_wait=3600&poll_interval=60"
    waiting = threading.Event()
    got: list[object] = []

    def consumer() -> None:
        async def run() -> None:
            async with conveyor.open(url) as backend:
                stream = backend.poll(WorkerInfo("w", "default"))
                assert await anext(stream) is None
                waiting.set()
                task = await anext(stream)
                assert task is not None
                await backend.hooks.ack(task, Done(None))
                got.append(task.args)
                await stream.aclose()

        asyncio.run(run())

    thread = threading.Thread(target=consumer, daemon=True)  # daemon: a hung wait ends with us
    thread.start()
    assert waiting.wait(timeout=60)
    time.sleep(0.05)  # let it settle into its wait

    async def push() -> None:
        async with conveyor.open(url) as backend:
            await backend.push({"hello": "thread"})

    asyncio.run(push())
    thread.join(timeout=30)  # far less than poll_interval: only a wake-up gets it there
    assert got == [b'{"hello":"thread"}']  # the raw stream yields the encoded args
    assert not thread.is_alive()


def test_listing_while_other_threads_push_sees_a_consistent_index(
    tmp_path: Path, in_threads: Callable[[int, Callable[[int], None]], None]
) -> None:
    url = f"json://{tmp_path}/tasks.json?fsync=false"
    asyncio.run(conveyor.open(url).aclose())
    errors: list[BaseException] = []

    def work(k: int) -> None:
        async def run() -> None:
            async with conveyor.open(url) as backend:
                for i in range(300):
                    if k % 2:
                        await backend.push_many([{"k": k, "i": i, "j": j} for j in range(5)])
                    else:
                        await backend.metrics()
                        if i % 30 == 0:
                            await backend.list_tasks(filter=Filter(page_size=1000))

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported below
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: a listing outside the lock would race
    try:
        in_threads(6, work)
    finally:
        sys.setswitchinterval(switch)
    assert errors == []  # no "dictionary changed size during iteration"


def test_a_forked_child_opens_its_own_journal_while_the_parent_has_one(tmp_path: Path) -> None:
    url = f"json://{tmp_path}/tasks.json"

    async def parent_side() -> None:
        async with conveyor.open(url) as parent:
            await parent.push({"who": "parent"})
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.close(read)
                    # (A fresh loop: the parent's is not running in this child.)
                    child = conveyor.open(url)
                    own = child.plugin.journal is not parent.plugin.journal  # type: ignore[attr-defined]
                    tid = asyncio.new_event_loop().run_until_complete(child.push({"who": "child"}))
                    os.write(write, f"{own} {tid}".encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write)
            reported = b""
            while chunk := os.read(read, 4096):
                reported += chunk
            os.close(read)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            separate, child_id = reported.decode().split()
            assert separate == "True"  # not the parent's lock descriptor and index
            task = await parent.fetch_by_id(child_id)
            assert task is not None and task.args == {"who": "child"}

    asyncio.run(parent_side())


def test_threads_waiting_for_another_processs_lock_all_get_it_once_it_is_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.json"
    url = f"json://{path}?lock_timeout=60"
    opened = threading.Barrier(THREADS + 1)
    locked = threading.Barrier(THREADS + 1)
    pushed: list[str] = []

    def producer(k: int) -> None:
        async def run() -> None:
            backend = conveyor.open(url)
            opened.wait(timeout=60)
            locked.wait(timeout=60)  # another process holds the lock now
            for i in range(3):
                pushed.append(await backend.push({"k": k, "i": i}))
            await backend.aclose()

        asyncio.run(run())

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    opened.wait(timeout=60)
    holder = os.open(f"{path}.lock", os.O_RDWR)  # another open file: another process's lock
    fcntl.flock(holder, fcntl.LOCK_EX)
    locked.wait(timeout=60)
    time.sleep(0.2)  # they queue behind the lock (none may take it meanwhile)
    assert pushed == []
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"

    async def stored() -> set[str]:
        async with conveyor.open(url) as backend:
            return {t.id for t in await backend.list_all_tasks(Filter(page_size=1000))}

    assert len(pushed) == THREADS * 3 and asyncio.run(stored()) == set(pushed)

"""The thread-side group commit: threads whose loops block for the disk, one leader a batch.

Each test slows the disk down (a sleep before the real fsync) so that the
threads' writes gather into batches; what is checked is read from the file and
from the calls' results, never from timing.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from conveyor_json import commit

import conveyor
from conveyor import Done, Filter, StaleLease, TaskNotFound, WorkerInfo

THREADS = 8


def test_threads_acking_one_task_at_once_settle_it_once(
    tmp_path: Path, slow_disk: Any, in_threads: Callable[[int, Callable[[int], None]], None]
) -> None:
    # The acks gather in batches; each section must see what the ones before it in
    # its batch did, so that exactly one ack of the claimed task is accepted.
    path = tmp_path / "tasks.json"
    url = f"json://{path}"

    async def claimed() -> conveyor.Task[bytes]:
        async with conveyor.open(url) as backend:
            await backend.push({"n": 0})
            stream = backend.hooks.poll(WorkerInfo("w", "default"))
            task = await anext(stream)
            await stream.aclose()
            assert task is not None
            return task

    task = asyncio.run(claimed())
    start = threading.Barrier(THREADS - 1)
    accepted: list[int] = []
    refused: list[int] = []
    acked = threading.Event()

    def acker(k: int) -> None:
        async def run() -> None:
            async with conveyor.open(url) as backend:
                if k == 0:  # keeps a batch in its fsync, so that the acks gather behind it
                    for _ in range(2_000):  # bounded: a failing acker must not hang it
                        if acked.is_set():
                            return
                        await backend.push({"pacer": True})
                    return
                start.wait()
                assert slow_disk.syncing.wait(timeout=60)
                try:
                    await backend.hooks.ack(task, Done(None))
                    accepted.append(k)
                except StaleLease:
                    refused.append(k)
                if len(accepted) + len(refused) == THREADS - 1:
                    acked.set()

        asyncio.run(run())

    in_threads(THREADS, acker)
    assert len(accepted) == 1 and len(refused) == THREADS - 2
    done = [line for line in path.read_bytes().splitlines() if b'"s":"Done"' in line]
    assert len(done) == 1 and task.id.encode() in done[0]


def test_a_write_that_fails_in_a_batch_fails_alone(
    tmp_path: Path, slow_disk: Any, in_threads: Callable[[int, Callable[[int], None]], None]
) -> None:
    path = tmp_path / "tasks.json"
    url = f"json://{path}"
    asyncio.run(conveyor.open(url).aclose())
    start = threading.Barrier(THREADS)
    pushed: list[str] = []
    missing: list[int] = []

    def writer(k: int) -> None:
        async def run() -> None:
            async with conveyor.open(url) as backend:
                start.wait()
                for i in range(10):
                    tid = await backend.push({"k": k, "i": i})
                    pushed.append(tid)
                    if k % 2:
                        gone = await backend.fetch_by_id(tid)
                        assert gone is not None
                        gone = attrs.evolve(gone, id=conveyor.TaskId.new())
                        try:
                            await backend.hooks.update(gone)
                        except TaskNotFound:
                            missing.append(k)

        asyncio.run(run())

    in_threads(THREADS, writer)
    assert len(missing) == THREADS // 2 * 10

    async def stored() -> list[str]:
        async with conveyor.open(url) as backend:
            return [t.id for t in await backend.list_all_tasks(Filter(page_size=1000))]

    assert sorted(asyncio.run(stored())) == sorted(pushed) and len(pushed) == THREADS * 10
    assert len(slow_disk.synced) < len(pushed)


def test_a_thread_waiting_for_another_processs_lock_keeps_its_loop_running(
    tmp_path: Path,
) -> None:
    # One producer in the loop (the write would block its thread for the disk), but the
    # lock is another process's: the wait happens in a thread, so the loop's timer runs.
    path = tmp_path / "tasks.json"
    url = f"json://{path}?lock_timeout=120"
    opened, locked, ticked = threading.Event(), threading.Event(), threading.Event()
    pushed: list[str] = []

    async def run() -> None:
        async with conveyor.open(url) as backend:  # opening takes the lock too
            opened.set()
            assert locked.wait(timeout=60)
            asyncio.get_running_loop().call_later(0.01, ticked.set)
            pushed.append(await backend.push({"n": 1}))

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    assert opened.wait(timeout=60)
    holder = os.open(f"{path}.lock", os.O_RDWR)  # another open file: another process's lock
    fcntl.flock(holder, fcntl.LOCK_EX)
    locked.set()
    try:
        assert ticked.wait(timeout=60), "the loop stood still while the push waited"
        assert pushed == []
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
        thread.join(timeout=120)
    assert not thread.is_alive() and len(pushed) == 1


def test_an_fsync_interrupted_in_one_thread_leaves_no_other_waiting_for_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_threads: Callable[[int, Callable[[int], None]], None],
) -> None:
    # A signal's exception (KeyboardInterrupt in the main thread) may end an fsync
    # midway: the writes it was to cover must still get one, and nobody may sleep on it.
    path = tmp_path / "tasks.json"
    url = f"json://{path}"
    asyncio.run(conveyor.open(url).aclose())
    synced: list[int] = []
    real = os.fdatasync
    interrupted = threading.Event()
    calls: list[int] = []

    def once_interrupted(fd: int) -> None:
        size = os.fstat(fd).st_size
        time.sleep(0.005)  # the other threads write meanwhile and wait for this one
        calls.append(size)
        if len(calls) == 2:  # the first batch's (the first push went alone)
            interrupted.set()
            raise KeyboardInterrupt
        real(fd)
        synced.append(size)

    monkeypatch.setattr(commit.os, "fdatasync", once_interrupted)
    start = threading.Barrier(THREADS)
    late: list[str] = []
    pushed: list[str] = []

    def producer(k: int) -> None:
        async def run() -> None:
            async with conveyor.open(url) as backend:
                start.wait()
                try:  # one push each: after the interrupted fsync, nobody writes again
                    tid = await backend.push({"k": k})
                except KeyboardInterrupt:
                    return
                data = path.read_bytes()
                end = data.index(b"\n", data.index(tid.encode())) + 1
                if not synced or max(synced) < end:
                    late.append(tid)
                pushed.append(tid)

        asyncio.run(run())

    in_threads(THREADS, producer)
    assert interrupted.is_set() and not late
    assert len(pushed) == THREADS - 1  # only the push of the thread it ran in failed

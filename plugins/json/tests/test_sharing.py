"""Two handles on one file (as two processes would hold), durability ordering, fsync failure."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import pytest
from conveyor_json import StoreBroken, commit

import conveyor
from conveyor import Done, ManualClock, StaleLease, Status, WorkerInfo


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time() + 60)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"json://{tmp_path}/tasks.json"


async def test_each_handle_sees_the_others_pushes_claims_and_acks(
    url: str, clock: ManualClock
) -> None:
    async with conveyor.open(url, clock=clock) as a, conveyor.open(url, clock=clock) as b:
        ids = [await a.push({"n": i}) for i in range(10)]
        stream_a = a.poll(WorkerInfo("wa", "default"))
        stream_b = b.poll(WorkerInfo("wb", "default"))
        claimed: list[str] = []
        while True:
            got = [await anext(stream_a), await anext(stream_b)]
            if got == [None, None]:
                break
            for task, backend in zip(got, (a, b), strict=True):
                if task is not None:
                    claimed.append(task.id)
                    await backend.hooks.ack(task, Done(None))
        await stream_a.aclose()
        await stream_b.aclose()
        assert sorted(claimed) == sorted(ids)  # each task claimed by exactly one handle
        results = [r async for r in a.wait_for(ids, timeout=30)]
        assert {r.task_id for r in results} == set(ids)
        assert all(r.status is Status.DONE for r in results)


async def test_wait_for_sees_an_ack_made_through_another_handle(
    url: str, clock: ManualClock
) -> None:
    async with conveyor.open(url, clock=clock) as a, conveyor.open(url, clock=clock) as b:
        tid = await a.push({"n": 1})

        async def finish_elsewhere() -> None:
            await asyncio.sleep(0.05)
            stream = b.poll(WorkerInfo("wb", "default"))
            task = await anext(stream)
            assert task is not None and task.id == tid
            await b.hooks.ack(task, Done(b"7"))
            await stream.aclose()

        helper = asyncio.create_task(finish_elsewhere())
        result = await a.wait_one(tid, timeout=30)
        await helper
        assert result.status is Status.DONE and result.result == 7


async def test_an_idle_poll_wakes_for_another_handles_push(url: str, clock: ManualClock) -> None:
    async with conveyor.open(url, clock=clock, idle_wait=30) as a, conveyor.open(url) as b:
        stream = a.poll(WorkerInfo("wa", "default"))
        assert await anext(stream) is None
        waiting = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # waits rather than spins out another None
        tid = await b.push({"from": "b"})
        task = await asyncio.wait_for(waiting, 30)
        assert task is not None and task.id == tid
        await stream.aclose()


async def test_heartbeat_keeps_a_lease_and_a_stale_ack_is_refused_across_handles(
    url: str, clock: ManualClock
) -> None:
    async with conveyor.open(url, clock=clock, lease_seconds=10) as a:
        b = conveyor.open(url, clock=clock, lease_seconds=10)
        await a.push({"n": 1})
        worker = WorkerInfo("slow", "default")
        stream = a.poll(worker)
        first = await anext(stream)
        assert first is not None
        for _ in range(3):
            clock.advance(6)
            await a.heartbeat(worker)
            assert await b.resume_abandoned() == 0
        clock.advance(11)
        assert await b.resume_abandoned() == 1
        stream_b = b.poll(WorkerInfo("fresh", "default"))
        second = await anext(stream_b)
        assert second is not None and second.attempt == 2
        with pytest.raises(StaleLease):
            await a.hooks.ack(first, Done(None))
        await b.hooks.ack(second, Done(None))
        await stream.aclose()
        await stream_b.aclose()
        await b.aclose()


async def test_make_shared_serves_another_queue_over_one_handle(url: str) -> None:
    async with conveyor.open(url) as backend:
        mail = backend.make_shared("mail")
        await mail.push({"to": "x"})
        await backend.push({"other": 1})
        assert [t.queue for t in await mail.list_tasks()] == ["mail"]
        assert mail.plugin.journal is backend.plugin.journal  # type: ignore[attr-defined]
        await mail.aclose()
        assert len(await backend.list_all_tasks()) == 2  # still open for the first user


async def test_push_returns_only_after_an_fsync_covering_it(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_sizes: list[int] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        size = os.fstat(fd).st_size
        real(fd)
        synced_sizes.append(size)

    monkeypatch.setattr(commit.os, "fdatasync", recording)
    path = tmp_path / "tasks.json"
    async with conveyor.open(url) as backend:

        async def producer(k: int) -> None:
            for i in range(20):
                tid = await backend.push({"k": k, "i": i})
                data = path.read_bytes()
                end = data.index(b"\n", data.index(tid.encode())) + 1
                assert max(synced_sizes) >= end  # a finished fsync covered its record

        await asyncio.gather(*(producer(k) for k in range(8)))
    assert 0 < len(synced_sizes) < 160  # group commit: fewer fsyncs than pushes


async def test_an_fsync_error_is_fatal_for_the_handle(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    def failing(fd: int) -> None:
        nonlocal calls
        calls += 1
        raise OSError(errno.EIO, "Input/output error")

    async with conveyor.open(url) as backend:
        broken = backend.plugin.journal  # type: ignore[attr-defined]
        monkeypatch.setattr(commit.os, "fdatasync", failing)
        with pytest.raises(StoreBroken, match=r"fsync of .* failed .*Input/output error"):
            await backend.push({"n": 1})
        assert isinstance(broken.broken, str)
        # The next call opens a fresh handle (re-reading the file) and syncs with it;
        # the broken handle itself never retries its fsync.
        with pytest.raises(StoreBroken):
            await backend.push({"n": 2})
        assert calls == 2
        assert backend.plugin.journal is not broken  # type: ignore[attr-defined]
        assert broken.closed

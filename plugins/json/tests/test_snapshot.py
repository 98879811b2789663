"""The snapshot a compaction writes (format 3), payloads left in the file, and old stores."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conveyor_json import VERSION, CorruptStore

import conveyor
from conveyor import Done, Filter, Kill, ManualClock, Retry, Status, Task, TaskId, WorkerInfo

WORKER = WorkerInfo("w1", "default")
ODD = [b'{"a":1}', b'{ "spaced": true }', b"\x00\xffbinary", b"", b'"caf\xc3\xa9"', b"1e999"]


def ops(path: Path) -> list[str]:
    return [json.loads(line).get("op", "header") for line in path.read_bytes().splitlines()]


async def test_a_compacted_store_reopens_with_every_field_and_payload(
    tmp_path: Path,
    seen: Callable[[Task[bytes]], tuple[object, ...]],
    listed: Callable[[conveyor.Backend], Awaitable[list[tuple[object, ...]]]],
) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)  # past the real-time run_at of raw Tasks
    async with conveyor.open(f"json://{path}", clock=clock) as backend:
        for i, data in enumerate(ODD):
            await backend.hooks.push([Task(TaskId.new(), data, meta={"i": i})])
        await backend.push({"p": 1}, priority=5, name="named", queue="other")
        await backend.push({"later": 1}, delay=timedelta(hours=1))
        stream = backend.hooks.poll(WORKER)
        later = datetime(2100, 1, 1, tzinfo=UTC)
        for outcome in (Done(b'{"r":1}'), Retry(later, "boom"), Kill("dead"), None):
            task = await anext(stream)
            assert task is not None
            if outcome is not None:
                await backend.hooks.ack(task, outcome)
        await stream.aclose()
        before = await listed(backend)
        kinds = {t[3] for t in before}
        assert kinds == {Status.PENDING, Status.DONE, Status.FAILED, Status.KILLED, Status.RUNNING}
        backend.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
        assert ops(path)[:3] == ["header", "group", "tasks"]
        assert json.loads(path.read_bytes().splitlines()[0])["version"] == VERSION == 3
        # Payloads are read back from the new file, in this process...
        assert await listed(backend) == before
    # ... and by a fresh one, which loads the snapshot.
    async with conveyor.open(f"json://{path}", clock=clock) as again:
        assert await listed(again) == before
        # The snapshot keeps the ready order (the first four were claimed above).
        stream = again.hooks.poll(WORKER)
        first = await anext(stream)
        assert first is not None and first.args == ODD[4]
        await stream.aclose()


async def test_automatic_compaction_bounds_what_opening_replays(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}?compact_threshold=20") as backend:
        ids = [await backend.push({"n": i}) for i in range(200)]
    kinds = ops(path)
    assert "tasks" in kinds  # pushes alone (nothing superseded) still get a snapshot
    tail = len(kinds) - 1 - max(i for i, op in enumerate(kinds) if op == "pay")
    assert tail <= 200 // 4 + 1
    async with conveyor.open(f"json://{path}") as again:
        assert [t.id for t in await again.list_tasks(page_size=500)] == ids


async def test_closing_with_a_long_journal_tail_leaves_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}?compact_threshold=10") as backend:
        await backend.push_many({"n": i} for i in range(1000))  # compacted at once
        assert ops(path)[-1] == "pay"
        for i in range(150):  # a tail of 150: under a quarter of the tasks, over an eighth
            await backend.push({"m": i})
        assert ops(path)[-1] == "put"
        first = await backend.push({"m": "short"})
    assert ops(path)[-1] == "pay"  # compacted as it closed
    async with conveyor.open(f"json://{path}?compact_threshold=10") as again:
        counts = {s.title: s.value for s in await again.hooks.metrics(None)}
        assert counts["PENDING_JOBS"] == "1151"
        assert (await again.fetch_by_id(first)) is not None
        for i in range(20):  # a short tail stays
            await again.push({"k": i})
    assert ops(path)[-1] == "put"


async def test_payloads_are_read_back_after_another_handle_compacts(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    one = conveyor.open(f"json://{path}")
    two = conveyor.open(f"json://{path}")  # another handle, as another process has
    async with one, two:
        first = await one.push({"keep": 1})
        done = await one.push({"done": 1})
        stream = one.hooks.poll(WORKER)
        task = await anext(stream)
        assert task is not None and task.id == first
        await stream.aclose()
        await one.hooks.update(task)  # a put of this process: its bytes are in memory
        await two.vacuum()  # replaces the file under `one`
        got = await one.hooks.fetch_by_id(first)
        assert got is not None and got.args == b'{"keep":1}'
        assert await one.hooks.fetch_by_id(done) is not None


def test_a_version_2_store_opens_and_is_rewritten_as_version_3(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    a, b = TaskId.new(), TaskId.new()
    put = '{"op":"put","id":"%s","q":"default","s":"Pending","a":0,"ma":5,"at":%d,"p":0,%s}'
    body = (put % (b, 2, '"args_b64":"AP8="') + "\n").encode()
    lines = [
        b'{"format":"conveyor-json","version":2}\n',
        (put % (a, 1, '"meta":{"k":1},"args":{"to":"x"}') + "\n").encode(),
        b'{"op":"group","n":2,"len":%d,"crc":%d}\n' % (2 * len(body), _crc(body + body)),
        body,
        body,
        b'{"op":"set","id":"' + a.encode() + b'","s":"Done","a":1,"at":1,"res":[1,2]}\n',
    ]
    path.write_bytes(b"".join(lines))

    async def check() -> None:
        async with conveyor.open(f"json://{path}") as backend:
            got = {t.id: t for t in await backend.hooks.list_all_tasks(Filter(page_size=100))}
            assert got[a].status is Status.DONE and got[a].result == b"[1,2]"
            assert got[a].args == b'{"to":"x"}' and dict(got[a].meta) == {"k": 1}
            assert got[b].args == b"\x00\xff"

    asyncio.run(check())
    assert json.loads(path.read_bytes().splitlines()[0])["version"] == 3
    assert "tasks" in ops(path)
    asyncio.run(check())


def _crc(data: bytes) -> int:
    return zlib.crc32(data)


async def test_damage_inside_a_snapshot_refuses_to_open_and_repair_cuts_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}?compact_threshold=1") as backend:
        await backend.push_many([{"n": i} for i in range(10)])  # compacted at once
        await backend.push({"after": 1})  # a whole record after the snapshot
    data = bytearray(path.read_bytes())
    at = data.index(b'{"op":"pay"') + 20
    data[at] ^= 0x01  # one flipped bit inside a payload line: the group's CRC fails
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStore, match="checksum does not match"):
        conveyor.open(f"json://{path}")
    out = subprocess.run(
        [sys.executable, "-m", "conveyor_json", "repair", str(path)],
        capture_output=True,
        text=True,
    )
    assert "checksum does not match" in out.stdout + out.stderr
    async with conveyor.open(f"json://{path}") as backend:
        assert await backend.list_all_tasks() == []  # cut before the snapshot, backup kept
    assert list(tmp_path.glob("tasks.json.repair-*.bak"))


def test_repair_counts_the_tasks_of_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"

    async def fill() -> None:
        async with conveyor.open(f"json://{path}?compact_threshold=1") as backend:
            await backend.push_many([{"n": i} for i in range(30)])  # compacted at once

    asyncio.run(fill())
    out = subprocess.run(
        [sys.executable, "-m", "conveyor_json", "repair", "--dry-run", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "every record is valid (30)" in out.stdout


async def test_a_payload_changed_under_an_open_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}?compact_threshold=1") as backend:
        tid = await backend.push({"n": 1})
        await backend.push_many([{"n": k} for k in range(8)])  # compacted: payloads on disk
        data = bytearray(path.read_bytes())
        at = data.index(b'{"op":"pay","args":{"n":1}}')
        data[at : at + 5] = b"#####"  # same size and file: the open handle does not reload
        with open(path, "r+b") as out:
            out.write(bytes(data))
        with pytest.raises(CorruptStore, match=r"tasks.json: the record at byte \d+ no longer"):
            await backend.fetch_by_id(tid)

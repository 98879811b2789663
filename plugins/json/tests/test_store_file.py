"""The store file: its format, the errors a bad file gets, modes, compaction."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from conveyor_json import (
    FORMAT,
    VERSION,
    CorruptStore,
    ForeignFile,
    JsonBackend,
    NewerFormat,
    StoreError,
)
from conveyor_json.errors import TornTailWarning

import conveyor
from conveyor import ConfigError, Done, ManualClock, PayloadError, Status, WorkerInfo

WORKER = WorkerInfo("w1", "default")


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_new_store_has_a_header_and_one_readable_record_per_push(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        tid = await backend.push({"to": "ann@example.com"}, meta={"source": "test"})
    header, record = lines(path)
    assert header == {"format": FORMAT, "version": VERSION}
    assert record["op"] == "put" and record["id"] == tid and record["q"] == "default"
    assert record["args"] == {"to": "ann@example.com"}
    assert record["meta"] == {"source": "test"}


async def test_store_and_lock_file_are_private(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    old = os.umask(0)
    try:
        backend = conveyor.open(f"json://{path}")
    finally:
        os.umask(old)
    await backend.aclose()
    for made in (path, Path(f"{path}.lock")):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600


def test_url_forms_and_query_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    relative = conveyor.open("json://sub/tasks.json?queue=mail&lease_seconds=2&fsync=false")
    assert isinstance(relative.plugin, JsonBackend)
    assert relative.plugin.path == str(tmp_path / "sub" / "tasks.json")
    config = relative.plugin.config
    assert (config.queue, config.lease_seconds, config.fsync) == ("mail", 2.0, False)
    absolute = conveyor.open(f"json://{tmp_path}/abs.json")
    assert absolute.plugin.path == str(tmp_path / "abs.json")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="needs a file path"):
        conveyor.open("json://")
    with pytest.raises(ConfigError, match="lease_seconds must be a number of seconds more than 0"):
        conveyor.open(f"json://{tmp_path}/x.json?lease_seconds=0")
    with pytest.raises(ConfigError, match="Valid keys"):
        conveyor.open(f"json://{tmp_path}/x.json?colour=red")


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"directory .*nope does not exist; create it"):
        conveyor.open(f"json://{tmp_path}/nope/tasks.json")
    assert not (tmp_path / "nope").exists()


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable even for root (``chattr +i``), else by its mode."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode:
        pytest.skip("running as root without chattr: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder), pytest.raises(StoreError, match="must be writable by this user"):
        conveyor.open(f"json://{folder}/tasks.json")
    assert list(folder.iterdir()) == []


def test_a_directory_or_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "adir.json").mkdir()
    with pytest.raises(StoreError, match="it is a directory"):
        conveyor.open(f"json://{tmp_path}/adir.json")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="does not exist"):
        conveyor.open(f"json://{tmp_path}/afile/tasks.json")


def test_empty_file_is_refused_not_reset(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_bytes(b"")
    with pytest.raises(ForeignFile, match=r"tasks.json is empty"):
        conveyor.open(f"json://{path}")
    assert path.read_bytes() == b""


def test_foreign_json_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    foreign = json.dumps({"tasks": [{"id": 1, "status": "Pending"}]}, indent=2)
    path.write_text(foreign)
    with pytest.raises(ForeignFile, match="is not a conveyor-json store"):
        conveyor.open(f"json://{path}")
    assert path.read_text() == foreign


def test_newer_version_is_refused_naming_file_and_version(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION + 1}) + "\n")
    with pytest.raises(
        NewerFormat, match=rf"tasks.json is in conveyor-json format version {VERSION + 1}"
    ):
        conveyor.open(f"json://{path}")


async def _store_with(path: Path, count: int) -> list[str]:
    async with conveyor.open(f"json://{path}") as backend:
        return [await backend.push({"n": i}) for i in range(count)]


async def test_damage_in_the_middle_refuses_to_open_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    await _store_with(path, 4)
    text = path.read_text().splitlines()
    text[2] = text[2][:20] + "#" + text[2][21:]
    damaged = "\n".join(text) + "\n"
    path.write_text(damaged)
    with pytest.raises(CorruptStore, match=r"tasks.json line 3 is damaged"):
        conveyor.open(f"json://{path}")
    assert path.read_text() == damaged  # nothing reset


async def test_torn_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    ids = await _store_with(path, 3)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op":"put","id":"06h0')
    with pytest.warns(TornTailWarning, match="dropped a partly written last record"):
        backend = conveyor.open(f"json://{path}")
    async with backend:
        assert [t.id for t in await backend.list_tasks()] == ids
        await backend.push({"after": "repair"})
    assert path.read_bytes().startswith(whole)
    assert len(lines(path)) == 5  # header, 3 tasks, the new push: the tail was cut first


async def test_oversize_payload_never_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        with pytest.raises(PayloadError, match="over the limit"):
            await backend.push("x" * (2 << 20))
    assert len(lines(path)) == 1


async def test_payloads_round_trip_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    odd = [b'{"a":1}', b'{ "spaced": true }', b"\x00\xffbinary", b"", b'"caf\xc3\xa9"', b"1e999"]
    async with conveyor.open(f"json://{path}") as backend:
        tasks = [
            conveyor.Task(conveyor.TaskId.new(), data, meta={"i": i}) for i, data in enumerate(odd)
        ]
        await backend.hooks.push(tasks)
    async with conveyor.open(f"json://{path}") as again:
        for task in tasks:
            stored = await again.hooks.fetch_by_id(task.id)
            assert stored is not None and stored.args == task.args


async def test_queue_names_are_data_not_paths(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        await backend.push(1, queue="../../etc/passwd")
        await backend.push(2, queue="a/b\nc")
        names = [q.name for q in await backend.list_queues()]
    assert names == ["../../etc/passwd", "a/b\nc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.json", "tasks.json.lock"]


async def test_compaction_keeps_order_and_leases(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)
    url = f"json://{path}"
    async with conveyor.open(url, clock=clock) as backend:
        ids = [await backend.push({"n": i}, priority=i % 2) for i in range(6)]
        stream = backend.poll(WORKER)
        first = await anext(stream)
        second = await anext(stream)
        assert first is not None and second is not None
        await backend.hooks.ack(first, Done(b'"ok"'))
        await stream.aclose()
        records_before = len(lines(path))
        assert await backend.vacuum() == 1
    # one entry per task left (in the snapshot): the history and the finished task are gone
    assert records_before == 1 + 6 + 2 + 1
    snapshot = [r for r in lines(path) if r.get("op") == "tasks"]
    assert [r["id"] for r in snapshot] == [[i for i in ids if i != first.id]]
    async with conveyor.open(url, clock=clock) as again:
        assert await again.fetch_by_id(first.id) is None
        held = await again.fetch_by_id(second.id)
        assert held is not None and held.status is Status.RUNNING
        assert held.lease_token == second.lease_token
        order = []
        stream = again.poll(WorkerInfo("w2", "default"))
        while (task := await anext(stream)) is not None:
            order.append(task.id)
        await stream.aclose()
    # priority 1 first (ids 1, 3, 5), then priority 0 (0, 2, 4), FIFO within each
    expected = [ids[1], ids[3], ids[5], ids[0], ids[2], ids[4]]
    assert [first.id, second.id] == expected[:2]
    assert order == expected[2:]


async def test_automatic_compaction_bounds_the_file_and_keeps_results(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)
    async with conveyor.open(f"json://{path}", compact_threshold=50, clock=clock) as backend:
        tid = await backend.push({"n": 0})
        stream = backend.poll(WORKER)
        task = await anext(stream)
        assert task is not None
        await backend.hooks.ack(task, Done(b'{"answer":42}'))
        await stream.aclose()
        worker = WorkerInfo("beater", "default")
        await backend.register_worker(worker)
        for _ in range(500):
            await backend.heartbeat(worker)
        assert len(lines(path)) <= 1 + 2 + 51
    async with conveyor.open(f"json://{path}", clock=clock) as again:
        [result] = await again.check_status([tid])
        assert result.status is Status.DONE and result.result == {"answer": 42}
        [registered] = await again.list_workers()
        assert registered.id == "beater"


async def test_an_update_the_file_could_not_hold_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        tid = await backend.push({"n": 1})
        task = await backend.fetch_by_id(tid)
        assert task is not None
        with pytest.raises(TypeError, match="whole numbers"):
            await backend.update(attrs.evolve(task, priority="high"))
        with pytest.raises(TypeError, match="expected a string"):
            await backend.update(attrs.evolve(task, last_error=42))
    async with conveyor.open(f"json://{path}") as again:
        stored = await again.fetch_by_id(tid)
        assert stored is not None and stored.priority == 0


async def test_a_failed_automatic_compaction_does_not_fail_the_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    url = f"json://{folder}/tasks.json"
    async with conveyor.open(url, compact_threshold=5) as backend:
        worker = WorkerInfo("beater", "default")
        await backend.register_worker(worker)
        with read_only(folder):
            for _ in range(20):
                await backend.heartbeat(worker)  # each superseded: compaction is due
            tid = await backend.push({"still": "stored"})
        assert "compacting" in caplog.text and "will retry later" in caplog.text
        for _ in range(40):
            await backend.heartbeat(worker)  # writable again: the retry compacts
    assert len(lines(folder / "tasks.json")) < 1 + 20
    async with conveyor.open(url) as again:
        assert await again.fetch_by_id(tid) is not None

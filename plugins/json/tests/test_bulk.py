"""A bulk push is visible whole or not at all: cut at any byte, killed, or out of disk space."""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from conveyor_json import DiskFull, StoreBroken, TornTailWarning, journal
from conveyor_json.errors import CorruptStore

import conveyor
from conveyor import BackendUnavailable, Filter

BULK_PUSHER = """
import asyncio, os, random, signal, sys, conveyor
if sys.argv[4] == "tear":
    # Killed from inside a bulk write, at a random byte of it: the write is really torn.
    real_write, pushes = os.write, [0]
    def write(fd, data):
        if len(data) > 10_000:
            pushes[0] += 1
            if pushes[0] > 1:
                real_write(fd, bytes(data)[: random.randrange(len(data))])
                os.kill(os.getpid(), signal.SIGKILL)
        return real_write(fd, data)
    os.write = write
async def main():
    backend = conveyor.open(sys.argv[1])
    first, size = int(sys.argv[2]), int(sys.argv[3])
    for batch in range(first, first + 10**6):
        await backend.push_many([{"b": batch, "k": k} for k in range(size)])
        print(batch, flush=True)
asyncio.run(main())
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the child
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    proc.errors = errors  # type: ignore[attr-defined]
    return proc


def stderr_of(proc: subprocess.Popen[str]) -> str:
    errors = proc.errors  # type: ignore[attr-defined]
    errors.seek(0)
    return str(errors.read())[-3000:]


@pytest.fixture(autouse=True)
def quiet_torn_tail() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)
        yield


async def batches_in(path: Path) -> collections.Counter[int]:
    """How many tasks of each batch the store at ``path`` holds (opened afresh)."""
    counts: collections.Counter[int] = collections.Counter()
    async with conveyor.open(f"json://{path}") as backend:
        page = 1
        while True:
            tasks = await backend.hooks.list_all_tasks(Filter(page=page, page_size=1000))
            for task in tasks:
                counts[json.loads(task.args)["b"]] += 1
            if len(tasks) < 1000:
                return counts
            page += 1


def tally(
    counts: collections.Counter[int], acked: set[int], tried: set[int], size: int
) -> dict[str, int]:
    """Lost (acknowledged, missing), phantom (never pushed), partial and duplicated batches."""
    return {
        "lost": sum(1 for b in acked if counts[b] == 0),
        "phantom": sum(1 for b in counts if b not in tried),
        "partial": sum(1 for b in counts if 0 < counts[b] < size),
        "duplicated": sum(1 for b in counts if counts[b] > size),
    }


async def kill_bulk_pushers(path: Path, kills: int, size: int, seed: int) -> dict[str, int]:
    """SIGKILL a bulk pusher ``kills`` times at random moments; check after every kill."""
    await conveyor.open(f"json://{path}").aclose()
    rng = random.Random(seed)
    acked: set[int] = set()
    tried: set[int] = set()
    totals = collections.Counter[str]()
    first = 0
    for kill in range(kills):
        mode = "tear" if kill % 2 else "signal"
        child = spawn(BULK_PUSHER, f"json://{path}", first, size, mode)
        assert child.stdout is not None
        line = child.stdout.readline()  # one batch acknowledged: the child is under way
        assert line, stderr_of(child)
        acked.add(int(line))
        if mode == "signal":
            time.sleep(rng.random() * 0.05)
            child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL, stderr_of(child)
        acked.update(int(b) for b in out.split())
        last = max(acked, default=first - 1)
        tried.update(range(first, last + 2))  # the batch in flight may or may not be there
        first = last + 2
        totals.update(tally(await batches_in(path), acked, tried, size))
    print(f"\nbulk pushers killed {kills}x ({size} tasks per push): {dict(totals)}")
    return dict(totals)


async def test_a_bulk_pusher_killed_mid_push_leaves_whole_pushes_only(tmp_path: Path) -> None:
    totals = await kill_bulk_pushers(tmp_path / "tasks.json", kills=6, size=2000, seed=1)
    assert totals == {"lost": 0, "phantom": 0, "partial": 0, "duplicated": 0}


@pytest.mark.slow
async def test_soak_bulk_pushers_killed_many_times(tmp_path: Path) -> None:
    totals = await kill_bulk_pushers(tmp_path / "tasks.json", kills=16, size=3000, seed=2)
    assert totals == {"lost": 0, "phantom": 0, "partial": 0, "duplicated": 0}


async def _store_ending_in_a_group(path: Path) -> tuple[bytes, int]:
    """A store whose last write is a bulk push of batch 1; return the file and where it starts."""
    async with conveyor.open(f"json://{path}") as backend:
        await backend.push({"b": 0})
        await backend.push_many([{"b": 0}] * 2)
        start = path.stat().st_size
        await backend.push_many([{"b": 1, "k": k} for k in range(4)])
    return path.read_bytes(), start


async def test_a_bulk_push_cut_at_any_byte_is_whole_or_absent(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    full, start = await _store_ending_in_a_group(path)
    assert full[start:].startswith(b'{"op":"group",')
    trial = tmp_path / "trial.json"
    for cut in range(start, len(full) + 1):
        for tail in (b"", b"\0" * 64, b"garbage"):
            trial.write_bytes(full[:cut] + tail)
            counts = await batches_in(trial)
            assert counts[0] == 3, (cut, tail)  # what was acknowledged before stays
            assert counts[1] == (4 if cut == len(full) else 0), (cut, tail, counts)


async def test_a_damaged_bulk_push_is_never_partly_applied(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    full, start = await _store_ending_in_a_group(path)
    trial = tmp_path / "trial.json"
    refused = 0
    for at in range(start, len(full) - 1):
        damaged = bytearray(full)
        damaged[at] = ord("#") if damaged[at] != ord("#") else ord("%")
        trial.write_bytes(bytes(damaged))
        try:
            counts = await batches_in(trial)
        except CorruptStore:
            refused += 1  # a broken group header before whole lines: refused, never guessed
            continue
        assert counts[0] == 3 and counts[1] == 0, (at, counts)
    assert refused < len(full) - start


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size: str = "600k") -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def fill_then_retry(path: Path, filler: Path, size: int) -> dict[str, int]:
    """Push batches until the disk is full, free space, retry the failed push; tally."""
    backend = conveyor.open(f"json://{path}")
    acked: set[int] = set()
    batch = 0
    async with backend:
        with pytest.raises(DiskFull) as failure:
            while True:
                await backend.push_many([{"b": batch, "k": k} for k in range(size)])
                acked.add(batch)
                batch += 1
        assert isinstance(failure.value, BackendUnavailable)
        assert "full" in str(failure.value)
        before = await batches_in(path)
        assert before[batch] == 0  # the failed push left nothing behind
        filler.unlink()
        for _ in range(200):  # the backend reopens the store, with backoff
            try:
                await backend.push_many([{"b": batch, "k": k} for k in range(size)])
                break
            except StoreBroken:
                time.sleep(0.05)
        acked.add(batch)
    counts = await batches_in(path)
    totals = tally(counts, acked, set(range(batch + 1)), size)
    print(f"\nfull disk, push retried after freeing space: {totals}")
    return totals


async def test_a_full_disk_on_tmpfs_fails_the_bulk_push_whole(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as mount:
        filler = mount / "filler"
        filler.write_bytes(b"x" * 200_000)
        totals = await fill_then_retry(mount / "tasks.json", filler, 300)
    assert totals == {"lost": 0, "phantom": 0, "partial": 0, "duplicated": 0}


async def test_a_write_that_fails_half_way_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.json"
    real_write = os.write
    failures = []

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 10_000 and not failures:
            failures.append(fd)
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    async with conveyor.open(f"json://{path}") as backend:
        await backend.push_many([{"b": 0, "k": k} for k in range(300)])
        monkeypatch.setattr(journal.os, "write", half_then_full)
        with pytest.raises(DiskFull):
            await backend.push_many([{"b": 1, "k": k} for k in range(300)])
        monkeypatch.undo()
        assert (await batches_in(path))[1] == 0
        for _ in range(200):
            try:
                await backend.push_many([{"b": 1, "k": k} for k in range(300)])
                break
            except StoreBroken:
                time.sleep(0.05)
    assert await batches_in(path) == {0: 300, 1: 300}


@pytest.mark.slow
async def test_soak_full_disk_rounds(tmp_path: Path) -> None:
    totals = collections.Counter[str]()
    for round_ in range(6):
        (tmp_path / f"r{round_}").mkdir()
        with small_tmpfs(tmp_path / f"r{round_}", "800k") as mount:
            filler = mount / "filler"
            filler.write_bytes(b"x" * (100_000 + round_ * 50_000))
            totals.update(await fill_then_retry(mount / "tasks.json", filler, 100 + round_ * 150))
    print(f"\nfull disk, 6 rounds: {dict(totals)}")
    assert totals["lost"] == totals["phantom"] == totals["partial"] == totals["duplicated"] == 0

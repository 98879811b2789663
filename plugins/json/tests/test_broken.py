"""A broken store is loud: a real worker on a full disk retries and recovers, or exits 3."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor

JOBS = """
def handle(args):
    return None
"""


@contextlib.contextmanager
def full_tmpfs(tmp_path: Path, tasks: int) -> Iterator[tuple[Path, Path, list[str]]]:
    """A small tmpfs holding a store of ``tasks`` pending tasks and a filler using the rest."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        store = mount / "tasks.json"
        ids = _push(store, tasks)
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 512)
        os.close(fd)
        yield store, filler, ids
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _push(store: Path, count: int) -> list[str]:
    async def push() -> list[str]:
        async with conveyor.open(f"json://{store}") as backend:
            return list(await backend.push_many({"n": i} for i in range(count)))

    return asyncio.run(push())


def _finished(store: Path, ids: list[str]) -> int:
    async def count() -> int:
        async with conveyor.open(f"json://{store}") as backend:
            return len(await backend.check_status(ids))

    return asyncio.run(count())


def worker(tmp_path: Path, store: Path, *flags: str) -> subprocess.Popen[str]:
    (tmp_path / "jobs.py").write_text(JOBS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NO_COLOR": "1"}
    command = [sys.executable, "-m", "conveyor.cli", "-b", f"json://{store}", "worker"]
    return subprocess.Popen(
        [*command, "jobs:handle", *flags],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_burst_worker_on_a_full_disk_exits_3_with_one_line(tmp_path: Path) -> None:
    with full_tmpfs(tmp_path, 50) as (store, _filler, _ids):
        proc = worker(tmp_path, store, "--burst")
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("full" in line for line in lines), err
    assert "Traceback" not in err


def test_a_running_worker_reopens_the_store_once_space_is_freed(tmp_path: Path) -> None:
    with full_tmpfs(tmp_path, 50) as (store, filler, ids):
        proc = worker(tmp_path, store, "--concurrency", "4")
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:  # wait (bounded by the disk) for the worker to say so
                seen.append(line)
                if "full" in line:
                    break
            assert any("full" in line for line in seen), "".join(seen)
            assert proc.poll() is None  # still running: it retries, with backoff
            filler.unlink()
            deadline = time.monotonic() + 120
            while _finished(store, ids) < len(ids):
                assert time.monotonic() < deadline, "the worker never recovered"
                assert proc.poll() is None
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    assert proc.returncode == 0

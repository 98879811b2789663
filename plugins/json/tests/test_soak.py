"""Soak runs (``make soak``): workers killed mid-task among pushers, power-loss cuts with garbage
and holes. Each prints lost / phantom / duplicated / partial counts (the bulk-push and full-disk
soaks are in test_bulk.py)."""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conveyor_json import CorruptStore, TornTailWarning
from conveyor_json.repair import repair

import conveyor
from conveyor import Filter, ManualClock, Status, TaskContext, Worker, WorkerInfo

pytestmark = pytest.mark.slow

PUSHER = """
import asyncio, random, sys, conveyor
async def main():
    backend = conveyor.open(sys.argv[1])
    rng = random.Random(sys.argv[2])
    for i in range(int(sys.argv[3])):
        if rng.random() < 0.2:
            ids = await backend.push_many([{"p": sys.argv[2], "i": i, "k": k} for k in range(50)])
        else:
            ids = [await backend.push({"p": sys.argv[2], "i": i, "k": 0})]
        print(" ".join(ids), flush=True)
    await backend.aclose()
asyncio.run(main())
"""

SLOW_WORKER = """
import asyncio, random, sys, conveyor
async def main():
    backend = conveyor.open(sys.argv[1])
    log = open(sys.argv[2], "a", buffering=1)
    async def handler(args, ctx):
        log.write(f"start {ctx.id} {ctx.attempt}\\n")
        await asyncio.sleep(0.02 + random.random() / 20)  # long enough for kills to land mid-task
        log.write(f"end {ctx.id} {ctx.attempt}\\n")
    await conveyor.Worker(backend, handler, concurrency=8).run()
asyncio.run(main())
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    # Output to files, never a pipe nobody reads meanwhile: a full pipe would block the child.
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the child
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=output, stderr=errors, text=True
    )
    proc.errors, proc.output = errors, output  # type: ignore[attr-defined]
    return proc


def output_of(proc: subprocess.Popen[str]) -> str:
    output = proc.output  # type: ignore[attr-defined]
    output.seek(0)
    return str(output.read())


@pytest.fixture(autouse=True)
def quiet_torn_tail() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)
        yield


async def everything(backend: conveyor.Backend) -> list[Any]:
    tasks, page = [], 1
    while True:
        got = await backend.hooks.list_all_tasks(Filter(page=page, page_size=1000))
        tasks += got
        if len(got) < 1000:
            return tasks
        page += 1


async def test_soak_many_pushers_and_workers_killed_mid_task(tmp_path: Path) -> None:
    url = f"json://{tmp_path}/tasks.json?lease_seconds=1"
    await conveyor.open(url).aclose()
    log = tmp_path / "runs.log"
    pushers = [spawn(PUSHER, url, f"p{k}", 300) for k in range(4)]
    rng = random.Random(7)
    kills = 0
    while any(p.poll() is None for p in pushers) or kills < 20:
        assert kills < 300, "the pushers never finished"
        size = log.stat().st_size if log.exists() else 0
        victim = spawn(SLOW_WORKER, url, log)
        deadline = time.monotonic() + 60
        while (log.stat().st_size if log.exists() else 0) == size:  # it has started tasks
            if time.monotonic() > deadline or victim.poll() is not None:
                break
            time.sleep(0.02)
        time.sleep(0.1 + rng.random() / 2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        kills += 1
    pushed: list[str] = []
    groups: list[list[str]] = []
    for proc in pushers:
        assert proc.wait(timeout=120) == 0
        for line in output_of(proc).splitlines():
            ids = line.split()
            pushed += ids
            groups.append(ids)

    later = ManualClock(time.time() + 3600)
    async with conveyor.open(url, clock=later) as backend:

        def handler(args: Any, ctx: TaskContext) -> None:
            with log.open("a") as out:
                out.write(f"start {ctx.id} {ctx.attempt}\nend {ctx.id} {ctx.attempt}\n")

        await Worker(backend, handler, concurrency=8, handle_signals=False).run(burst=True)
        stored = {t.id: t for t in await everything(backend)}
    events = [line.split() for line in log.read_text().splitlines()]
    starts = collections.Counter((tid, attempt) for kind, tid, attempt in events if kind == "start")
    ran = collections.Counter(tid for kind, tid, _ in events if kind == "end")
    started = collections.Counter(tid for kind, tid, _ in events if kind == "start")
    counts = {
        "lost": sum(1 for tid in pushed if tid not in stored or stored[tid].status != Status.DONE),
        "phantom": sum(1 for tid in stored if tid not in set(pushed)),
        "duplicated": sum(1 for tid in pushed if started[tid] > 1),
        "same attempt twice": sum(1 for n in starts.values() if n > 1),
        "partial": sum(1 for ids in groups if 0 < sum(i in stored for i in ids) < len(ids)),
    }
    print(f"\nkilled {kills} slow workers among 4 pushers ({len(pushed)} tasks): {counts}")
    assert counts["lost"] == counts["phantom"] == counts["partial"] == 0
    assert counts["same attempt twice"] == 0  # a claim is never handed to two workers
    assert counts["duplicated"] > 0, "no kill landed mid-task: the run tested nothing"
    assert all(ran[tid] >= 1 for tid in pushed)


async def test_soak_power_loss_cuts_with_garbage_and_holes(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    acked: list[tuple[int, list[str]]] = []
    groups: list[list[str]] = []
    ids: list[str] = []
    async with conveyor.open(f"json://{path}") as backend:
        for i in range(60):
            if i % 3 == 0:
                batch = list(await backend.push_many([{"g": i, "k": k} for k in range(20)]))
                groups.append(batch)
                ids += batch
            else:
                ids.append(await backend.push({"n": i, "pad": "x" * (i * 5)}))
            acked.append((path.stat().st_size, list(ids)))
    async with conveyor.open(f"json://{path}", fsync=False) as loose:
        for i in range(10):  # unsynced writes a power cut may garble
            groups.append(list(await loose.push_many([{"late": i, "k": k} for k in range(20)])))
        stream = loose.hooks.poll(WorkerInfo("w", "default"))
        for _ in range(5):
            await anext(stream)
        await stream.aclose()
    known = set(ids).union(*groups)
    full = path.read_bytes()
    rng = random.Random(20261202)
    trial = tmp_path / "trial.json"
    counts = collections.Counter[str]()
    for _ in range(480):
        synced, survivors = rng.choice(acked)
        cut = rng.randint(synced, len(full))
        torn = bytearray(full[:cut])
        kind = rng.randrange(4)
        if kind == 1:
            torn += b"\0" * rng.randint(1, 4000)  # the size grew, the blocks never came
        elif kind == 2:
            torn += bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))  # garbage
        elif kind == 3 and cut > synced + 2:
            start = rng.randint(synced, cut - 1)  # a hole among unsynced writes
            end = min(cut, start + rng.randint(1, 4096))
            torn[start:end] = b"\0" * (end - start)
        trial.write_bytes(bytes(torn))
        try:
            backend = conveyor.open(f"json://{trial}")
        except CorruptStore:
            counts["repaired"] += 1
            repair(str(trial))
            backend = conveyor.open(f"json://{trial}")
        async with backend:
            stored = {t.id for t in await everything(backend)}
            await backend.push({"after": "power loss"})
        counts["lost"] += sum(1 for tid in survivors if tid not in stored)
        counts["partial"] += sum(1 for g in groups if 0 < sum(i in stored for i in g) < len(g))
        counts["phantom"] += len(stored - known)
        for backup in tmp_path.glob("trial.json.repair-*.bak"):
            backup.unlink()
    print(f"\n480 power-loss cuts (garbage, holes): {dict(counts)}")
    assert counts["lost"] == counts["partial"] == counts["phantom"] == 0

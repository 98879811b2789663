"""Benchmark of the json backend against huey's FileHuey and SqliteHuey, in one run.

Figures: durable push throughput with 1 and 16 concurrent producers, drain
throughput with one worker, and push latency with 1,000 vs 100,000 tasks
stored. conveyor's 16 producers are asyncio tasks in one process (huey's API
is synchronous, so its 16 producers are threads). Run:

    make bench/.venv/.installed && bench/.venv/bin/python bench/bench_json.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import conveyor
from conveyor import Backend, Done, WorkerInfo

TARGET_PUSH_16 = 20_000
TARGET_DRAIN = 10_000
TARGET_LATENCY_RATIO = 1.5


def _open(path: Path, **config: Any) -> Backend:
    return conveyor.open(f"json://{path}", **config)


async def push_rate(path: Path, total: int, producers: int) -> float:
    backend = _open(path)
    per = total // producers

    async def producer(k: int) -> None:
        for i in range(per):
            await backend.push({"producer": k, "n": i})

    start = time.perf_counter()
    await asyncio.gather(*(producer(k) for k in range(producers)))
    elapsed = time.perf_counter() - start
    await backend.aclose()
    return per * producers / elapsed


async def drain_rate(path: Path, total: int, concurrency: int) -> tuple[float, str]:
    backend = _open(path)
    await backend.push_many({"n": i} for i in range(total))
    worker_cls = getattr(conveyor, "Worker", None)
    done = 0
    if worker_cls is not None:

        async def handler(args: Any) -> None:
            nonlocal done
            done += 1

        worker = worker_cls(backend, handler, concurrency=concurrency)
        start = time.perf_counter()
        await worker.run(burst=True)
        elapsed = time.perf_counter() - start
        how = f"conveyor.Worker(concurrency={concurrency}), run(burst=True)"
    else:
        # The Worker's shape: one poll stream, up to `concurrency` tasks in flight,
        # each acked (durably, fsync shared) as soon as its handler returns.
        slots = asyncio.Semaphore(concurrency)
        running: set[asyncio.Task[None]] = set()

        async def run(task: conveyor.Task[bytes]) -> None:
            nonlocal done
            try:
                backend.codec.decode(task.args)
                done += 1
                await backend.hooks.ack(task, Done(None))
            finally:
                slots.release()

        stream = backend.poll(WorkerInfo("bench", backend.queue, concurrency))
        start = time.perf_counter()
        while True:
            await slots.acquire()
            task = await anext(stream)
            if task is None:
                slots.release()
                if not running:
                    break
                await asyncio.wait(running)
                continue
            job = asyncio.create_task(run(task))
            running.add(job)
            job.add_done_callback(running.discard)
        elapsed = time.perf_counter() - start
        await stream.aclose()
        how = f"poll/ack loop, one poll stream, {concurrency} in flight (Worker not yet in core)"
    assert done == total, (done, total)
    await backend.aclose()
    return total / elapsed, how


async def push_latency(path: Path, stored: int, samples: int) -> tuple[float, float]:
    backend = _open(path)
    have = int(next(s.value for s in await backend.metrics() if s.title == "TOTAL_JOBS"))
    if have < stored:
        await backend.push_stream({"fill": i} for i in range(stored - have))
    times = []
    for i in range(samples):
        start = time.perf_counter()
        await backend.push({"sample": i})
        times.append(time.perf_counter() - start)
    await backend.aclose()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def fsync_latency(folder: Path, samples: int = 200) -> float:
    """The disk's median write+fdatasync time: what one group commit waits for at least."""
    fd = os.open(folder / "probe.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(samples):
            start = time.perf_counter()
            os.write(fd, b"x" * 200 + b"\n")
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return statistics.median(times)


# --- huey ---------------------------------------------------------------------------


def huey_rates(kind: str, folder: Path, total: int) -> tuple[float, float, float, str]:
    from huey import FileHuey, SqliteHuey

    if kind == "FileHuey":
        huey: Any = FileHuey("bench", path=str(folder / "filehuey"), use_thread_lock=False)
        durability = "no fsync (a file per task, rename on dequeue); dequeue deletes: at-most-once"
    else:
        db = str(folder / "huey.db")
        huey = SqliteHuey("bench", filename=db, fsync=True)
        with sqlite3.connect(db) as conn:
            mode = conn.execute("pragma journal_mode").fetchone()[0]
        durability = f"sqlite {mode}, synchronous=FULL (fsync per commit); dequeue deletes"

    @huey.task()
    def job(n: int) -> None:
        return None

    def produce(count: int) -> None:
        for i in range(count):
            job(i)

    def timed(threads: int) -> float:
        per = total // threads
        workers = [threading.Thread(target=produce, args=(per,)) for _ in range(threads)]
        start = time.perf_counter()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return per * threads / (time.perf_counter() - start)

    one = timed(1)
    sixteen = timed(16)
    start = time.perf_counter()
    drained = 0
    while (message := huey.dequeue()) is not None:
        huey.execute(message)
        drained += 1
    drain = drained / (time.perf_counter() - start)
    return one, sixteen, drain, durability


# --- main ---------------------------------------------------------------------------


def line(label: str, value: float, unit: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>12,.0f} {unit}{('   ' + note) if note else ''}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    opts = parser.parse_args()
    n_push = 3_000 if opts.quick else 20_000
    n_drain = 5_000 if opts.quick else 50_000
    big = 10_000 if opts.quick else 100_000
    n_huey = 1_000 if opts.quick else 3_000
    print(f"bench_json: load average before {os.getloadavg()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        print(f"disk: median write+fdatasync {fsync_latency(folder) * 1e6:,.0f} us")
        print("conveyor json (fsync on: each push/ack returns after fdatasync, group commit)")
        one = await push_rate(folder / "p1.json", n_push // 4, 1)
        line("durable push, 1 producer", one, "pushes/s")
        sixteen = await push_rate(folder / "p16.json", n_push, 16)
        line("durable push, 16 producers (asyncio tasks)", sixteen, "pushes/s")
        drain, how = await drain_rate(folder / "drain.json", n_drain, 64)
        line("drain, one worker", drain, "tasks/s", how)
        small, small99 = await push_latency(folder / "lat.json", 1_000, 500)
        line(
            "push latency, 1,000 stored (median)", small * 1e6, "us", f"p99 {small99 * 1e6:,.0f} us"
        )
        large, large99 = await push_latency(folder / "lat.json", big, 500)
        line(
            f"push latency, {big:,} stored (median)",
            large * 1e6,
            "us",
            f"p99 {large99 * 1e6:,.0f} us",
        )
        ratio = large / small
        print(f"  latency ratio {big:,} / 1,000 stored: {ratio:.2f}x")
        nofsync = _open(folder / "nofsync.json", fsync=False)
        start = time.perf_counter()
        for i in range(n_push // 4):
            await nofsync.push({"n": i})
        line("push, 1 producer, fsync=false", n_push // 4 / (time.perf_counter() - start), "/s")
        await nofsync.aclose()

        results = {}
        try:
            for kind in ("FileHuey", "SqliteHuey"):
                results[kind] = huey_rates(kind, folder, n_huey)
        except ImportError:
            print("huey is not installed: run `make bench/.venv/.installed` and use its python")
        for kind, (h1, h16, hd, durability) in results.items():
            print(f"huey {kind} ({durability}; {n_huey:,} tasks)")
            line("push, 1 producer", h1, "pushes/s", f"json/huey {one / h1:.2f}x")
            line("push, 16 producers (threads)", h16, "pushes/s", f"json/huey {sixteen / h16:.2f}x")
            line("drain, dequeue+execute loop", hd, "tasks/s", f"json/huey {drain / hd:.2f}x")
    verdicts = [
        (f"push, 16 producers >= {TARGET_PUSH_16:,}/s", sixteen >= TARGET_PUSH_16),
        (f"drain >= {TARGET_DRAIN:,}/s", drain >= TARGET_DRAIN),
        (f"latency ratio <= {TARGET_LATENCY_RATIO}", ratio <= TARGET_LATENCY_RATIO),
    ]
    for name, ok in verdicts:
        print(f"  target {name}: {'met' if ok else 'NOT met'}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        print(f"disk: median write+fdatasync {fsync_latency(Path(tmp)) * 1e6:,.0f} us (after)")
    print(f"bench_json: load average after {os.getloadavg()}")
    return 0


def run(entry: Callable[[], Any]) -> int:
    return int(asyncio.run(entry()))


if __name__ == "__main__":
    sys.exit(run(main))

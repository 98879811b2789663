"""Benchmark of the json backend against huey's SqliteHuey and the disk, in one run.

Every figure is the median of interleaved rounds (each round measures the disk,
conveyor and huey one after the other, so a noisy moment hits all of them),
and the targets are ratios in the same run:

- durable push, 1 producer: >= 1.0x SqliteHuey (synchronous=FULL) and >= 0.7x
  the disk's fsync rate (1 / median write+fdatasync, measured in each round);
  measured twice: each system in its own phase of the round, and "in turns"
  (one probe fsync, one json push, one huey enqueue, again and again), which a
  disk whose speed changes between phases cannot skew;
- durable push, 16 producers (threads, each with its own backend, since a
  backend belongs to one event loop; they share one open journal): >= 3x
  SqliteHuey with 16 threads;
- with ``--growth``: a store grown to 1,000,000 small tasks opens in <= 3 s,
  the process holds <= 1.5x the file's size, and push/claim/ack figures stay
  flat as the store grows.

    make bench/.venv/.installed && nice bench/.venv/bin/python bench/bench_json.py [--quick]

The medians go to ``bench/results/json.json`` through ``report.Report`` (what
``bench/plot.py`` charts); the ratios are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from report import Report

import conveyor
from conveyor import Done, WorkerInfo


def fsync_rate(folder: Path, samples: int = 300) -> float:
    """1 / the disk's median write+fdatasync: the most one-at-a-time durable writes/s."""
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
    return 1 / statistics.median(times)


def json_push_one(path: Path, count: int) -> tuple[float, float]:
    """Pushes/s, and 1 / the median push time (what a disk stall cannot move)."""

    async def run() -> tuple[float, float]:
        backend = conveyor.open(f"json://{path}")
        times = []
        start = time.perf_counter()
        for i in range(count):
            began = time.perf_counter()
            await backend.push({"n": i})
            times.append(time.perf_counter() - began)
        elapsed = time.perf_counter() - start
        await backend.aclose()
        return count / elapsed, 1 / statistics.median(times)

    return asyncio.run(run())


def one_by_one(folder: Path, count: int) -> dict[str, float]:
    """One producer, the three systems taking turns sample by sample.

    Each step times one write+fdatasync of the disk probe, one durable json push
    and one SqliteHuey enqueue (in an order that turns each step), so a disk that
    stalls for a second or speeds up between phases hits all three alike (on a
    shared machine it does both). The figures are 1 / each median.
    """

    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(folder / "huey-one.db"), fsync=True)

    @huey.task()
    def job(n: int) -> None:
        return None

    async def run() -> dict[str, float]:
        backend = conveyor.open(f"json://{folder / 'steps.json'}")
        probe = os.open(folder / "probe-steps.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        disk: list[float] = []
        ours: list[float] = []
        theirs: list[float] = []
        clock = time.perf_counter

        def probe_once() -> None:
            os.write(probe, b"x" * 200 + b"\n")
            os.fdatasync(probe)

        try:
            for i in range(count):
                # The order turns each step: an fsync also commits the filesystem
                # journal for whatever the one before it wrote.
                for k in range(3):
                    which = (i + k) % 3
                    began = clock()
                    if which == 0:
                        probe_once()
                        disk.append(clock() - began)
                    elif which == 1:
                        await backend.push({"n": i})
                        ours.append(clock() - began)
                    else:
                        job(i)
                        theirs.append(clock() - began)
        finally:
            os.close(probe)
            await backend.aclose()
        median = statistics.median
        return {
            STEP_DISK: 1 / median(disk),
            STEP_ONE: 1 / median(ours),
            STEP_HUEY: 1 / median(theirs),
        }

    return asyncio.run(run())


def json_push_threads(path: Path, per: int, threads: int) -> float:
    asyncio.run(conveyor.open(f"json://{path}").aclose())
    ready = threading.Barrier(threads + 1)

    def producer(k: int) -> None:
        async def run() -> None:
            backend = conveyor.open(f"json://{path}")
            ready.wait()
            for i in range(per):
                await backend.push({"k": k, "n": i})
            await backend.aclose()

        asyncio.run(run())

    workers = [threading.Thread(target=producer, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    return per * threads / (time.perf_counter() - start)


def json_push_tasks(path: Path, per: int, producers: int) -> float:
    async def run() -> float:
        backend = conveyor.open(f"json://{path}")

        async def producer(k: int) -> None:
            for i in range(per):
                await backend.push({"k": k, "n": i})

        start = time.perf_counter()
        await asyncio.gather(*(producer(k) for k in range(producers)))
        elapsed = time.perf_counter() - start
        await backend.aclose()
        return per * producers / elapsed

    return asyncio.run(run())


def huey_push(folder: Path, per: int, threads: int) -> float:
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(folder / f"huey{threads}.db"), fsync=True)

    @huey.task()
    def job(n: int) -> None:
        return None

    def produce() -> None:
        for i in range(per):
            job(i)

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return per * threads / (time.perf_counter() - start)


DISK, ONE, BY_MEDIAN, HUEY1 = "fsync rate", "json push 1", "json push 1, 1/median", "huey push 1"
THREADS, TASKS, HUEY16 = "json push 16 threads", "json push 16 tasks", "huey push 16 threads"
STEP_DISK, STEP_ONE, STEP_HUEY = (
    "fsync rate, in turns",
    "json push 1, in turns",
    "huey push 1, in turns",
)


def rounds(opts: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, list[float]] = {}
    per_one, per_thread = (300, 60) if opts.quick else (2_000, 400)
    for r in range(opts.rounds):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            folder = Path(tmp)
            rate, by_median = json_push_one(folder / "one.json", per_one)
            got = {
                **one_by_one(folder, per_one // 2),
                DISK: fsync_rate(folder),
                ONE: rate,
                BY_MEDIAN: by_median,
                HUEY1: huey_push(folder, per_one, 1),
                THREADS: json_push_threads(folder / "t.json", per_thread, 16),
                TASKS: json_push_tasks(folder / "a.json", per_thread, 16),
                HUEY16: huey_push(folder, per_thread, 16),
            }
        for key, value in got.items():
            figures.setdefault(key, []).append(value)
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in got.items()))
    return {key: statistics.median(values) for key, values in figures.items()}


# --- growth ----------------------------------------------------------------------------

# A fresh process per size: the open time, the peak RSS of opening (the interpreter
# with conveyor imported counts too: "base"), then push/claim/ack medians. The ops run
# with fsync=false: a durable op's median is the disk's fsync, which would hide how the
# index's cost grows (the durable push is measured by the rounds above).
# Peak RSS is VmHWM: ru_maxrss would report the parent's peak, which a child inherits.
GROW = """
import asyncio, json, os, sys, time, conveyor, conveyor_json
def peak():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
path = sys.argv[1]
base = peak()
start = time.perf_counter()
backend = conveyor.open(f"json://{path}?fsync=false")
opened = time.perf_counter() - start
rss = peak()
async def ops():
    times = {"push": [], "claim": [], "ack": []}
    stream = backend.hooks.poll(conveyor.WorkerInfo("bench", "default"))
    clock = time.perf_counter
    for i in range(300):
        t = clock(); await backend.push({"sample": i}); times["push"].append(clock() - t)
        t = clock(); task = await anext(stream); times["claim"].append(clock() - t)
        t = clock(); await backend.hooks.ack(task, conveyor.Done(None))
        times["ack"].append(clock() - t)
    await stream.aclose()
    await backend.aclose()
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}
medians = asyncio.run(ops())
size = os.path.getsize(path)
print(json.dumps({"open": opened, "rss": rss, "base": base, "size": size, **medians}))
"""


def growth(folder: Path, sizes: list[int], repeats: int) -> list[dict[str, float]]:
    """Grow one store to each size (half the tasks finished), keeping a copy at each, then
    measure a fresh process on a fresh copy of every size in each of ``repeats`` rounds.

    The store is grown through the API, so each copy is in whatever state compaction
    left it: a snapshot and the journal written after it. The sizes are measured in
    interleaved rounds (the load varies) and each figure is the median of its rounds.
    """
    path = folder / "grow.json"
    have = 0
    for size in sizes:

        async def fill(count: int, have: int = have) -> None:
            async with conveyor.open(f"json://{path}?fsync=false") as backend:
                stream = backend.hooks.poll(WorkerInfo("filler", "default"))
                for start in range(0, count, 5_000):
                    chunk = min(5_000, count - start)
                    await backend.push_many({"fill": have + start + k} for k in range(chunk))
                    for _ in range(chunk // 2):  # half of them done: finished tasks too
                        task = await anext(stream)
                        if task is not None:
                            await backend.hooks.ack(task, Done(None))
                await stream.aclose()

        asyncio.run(fill(size - have))
        have = size
        shutil.copyfile(path, folder / f"at-{size}.json")
    samples: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    for r in range(repeats):
        for size in sizes:
            run = folder / "run.json"  # a fresh copy: the ops measured do not pile up
            shutil.copyfile(folder / f"at-{size}.json", run)
            out = subprocess.run(
                [sys.executable, "-c", GROW, str(run)], capture_output=True, text=True, check=True
            )
            samples[size].append(json.loads(out.stdout))
            run.unlink()
        print(f"  growth round {r + 1} done, load {os.getloadavg()[0]:.1f}")
    rows = []
    for size in sizes:
        row = {"tasks": float(size)}
        row.update({k: statistics.median(s[k] for s in samples[size]) for k in samples[size][0]})
        rows.append(row)
        print(
            f"  {size:>9,} tasks, file {row['size'] / 1e6:,.1f} MB: open {row['open']:.2f} s,"
            f" RSS {row['rss'] / 1e6:,.0f} MB ({row['rss'] / row['size']:.2f}x file;"
            f" {(row['rss'] - row['base']) / size:,.0f} B/task over the bare interpreter's"
            f" {row['base'] / 1e6:,.0f} MB),"
            f" push {row['push'] * 1e6:,.0f} us, claim {row['claim'] * 1e6:,.0f} us,"
            f" ack {row['ack'] * 1e6:,.0f} us (medians of {repeats})"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--growth", action="store_true", help="grow a store to 1,000,000 tasks")
    parser.add_argument("--growth-only", action="store_true", help="only --growth, no rounds")
    opts = parser.parse_args()
    print(f"bench_json: load average before {os.getloadavg()}, {os.cpu_count()} cores")
    if opts.growth_only:  # its own results file: the push figures of json.json stay
        return growth_report(opts, Report("json-growth"))
    med = rounds(opts)
    one, huey1, disk = med[ONE], med[HUEY1], med[DISK]
    threads, huey16 = med[THREADS], med[HUEY16]
    print(f"medians of {opts.rounds} interleaved rounds:")
    for key, value in med.items():
        print(f"  {key:<24} {value:>10,.0f}/s")
    checks = [
        ("push, 1 producer / SqliteHuey", one / huey1, 1.0),
        ("push, 1 producer / fsync rate", one / disk, 0.7),
        ("push, 1 producer (1/median) / fsync rate", med[BY_MEDIAN] / disk, 0.7),
        ("in turns: push, 1 producer / SqliteHuey", med[STEP_ONE] / med[STEP_HUEY], 1.0),
        ("in turns: push, 1 producer / fsync rate", med[STEP_ONE] / med[STEP_DISK], 0.7),
        ("push, 16 threads / SqliteHuey 16 threads", threads / huey16, 3.0),
        ("push, 16 asyncio tasks / SqliteHuey 16 threads", med[TASKS] / huey16, 3.0),
    ]
    for name, ratio, target in checks:
        verdict = "met" if ratio >= target else "NOT met"
        print(f"  {name:<48} {ratio:5.2f}x (target >= {target}x: {verdict})")
    report = Report("json")
    report.add("durable push, 1 producer", "conveyor-json", one)
    report.add("durable push, 1 producer", "conveyor-json (1 / median push)", med[BY_MEDIAN])
    report.add("durable push, 1 producer", "SqliteHuey", huey1)
    report.add("durable push, 1 producer", "disk (1 / median write+fdatasync)", disk)
    turns = "durable push, 1 producer, in turns (1 / median)"
    report.add(turns, "conveyor-json", med[STEP_ONE])
    report.add(turns, "SqliteHuey", med[STEP_HUEY])
    report.add(turns, "disk (write+fdatasync)", med[STEP_DISK])
    report.add("durable push, 16 producers", "conveyor-json, 16 threads", threads)
    report.add("durable push, 16 producers", "conveyor-json, 16 asyncio tasks", med[TASKS])
    report.add("durable push, 16 producers", "SqliteHuey, 16 threads", huey16)
    return growth_report(opts, report) if opts.growth else finish(report)


def growth_report(opts: argparse.Namespace, report: Report) -> int:
    sizes = [1_000, 10_000, 100_000] if opts.quick else [1_000, 100_000, 1_000_000]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        rows = growth(Path(tmp), sizes, opts.rounds)
    last = rows[-1]
    print(
        f"  open at {last['tasks']:,.0f} tasks: {last['open']:.2f} s (target <= 3 s);"
        f" RSS/file {last['rss'] / last['size']:.2f}x (target <= 1.5x)"
    )
    for op in ("push", "claim", "ack"):
        for row in rows[1:]:
            print(
                f"  {op} at {row['tasks']:,.0f} / at {rows[0]['tasks']:,.0f} tasks:"
                f" {row[op] / rows[0][op]:.2f}x (flat is ~1x)"
            )
    for row in rows:
        system = f"conveyor-json, {row['tasks']:,.0f} tasks"
        report.add("growth: open", system, row["open"], unit="s", higher_is_better=False)
        report.add(
            "growth: resident memory / file size",
            system,
            row["rss"] / row["size"],
            unit="x",
            higher_is_better=False,
        )
        for op in ("push", "claim", "ack"):
            report.add(
                f"growth: median {op}", system, row[op] * 1e6, unit="us", higher_is_better=False
            )
    return finish(report)


def finish(report: Report) -> int:
    print(f"figures written to {report.save()}")
    gc.collect()
    print(
        f"bench_json: load average after {os.getloadavg()}; max RSS"
        f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:,.0f} MB"
    )
    return 0


def run(entry: Callable[[], int]) -> int:
    return entry()


if __name__ == "__main__":
    sys.exit(run(main))

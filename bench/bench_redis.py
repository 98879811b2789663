"""conveyor-redis against raw redis-py, saq, taskiq-redis and huey, on one Redis in one run.

    make bench/.venv/.installed && bench/.venv/bin/python bench/bench_redis.py [--n 5000]

Starts its own redis-server on a free loopback port (no persistence) unless
CONVEYOR_REDIS_URL is set. For each system: enqueue N tasks one by one (each
awaited; the systems take turns in 10 rounds and the median round is reported),
enqueue 4N in bulk (where the library has a bulk call), drain the N tasks
with one worker process (three times, refilled in between, median reported;
timed inside the worker, from its first task's start to its N-th task's end,
so process start-up is excluded), the enqueue→start latency of tasks pushed
one at a time to an idle worker, and scale-out: 2N tasks drained by 1 and by 2
worker processes, conveyor's and a bare BLMOVE consumer's (the ceiling this
machine allows), with redis-server's CPU, the workers' CPU and the cores other
users kept busy meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from report import Report

SYSTEMS = ["conveyor", "redis-py", "saq", "taskiq", "huey"]
LATENCY_TASKS = 500
LATENCY_GAP = 0.004  # seconds between latency pushes: the worker is idle in between


# --- the worker side (a subprocess per measurement) -------------------------------------


class Counter:
    """Counts handler starts; prints the drain time or the latencies when ``total`` is reached."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode, self.total = mode, total
        self.count = 0
        self.first = 0.0
        self.lat: list[float] = []

    def hit(self, ts: float) -> None:
        now = time.time()
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += 1
        if self.mode == "latency":
            self.lat.append(now - ts)
        if self.count >= self.total:
            if self.mode == "drain":
                out = {"seconds": time.perf_counter() - self.first}
            else:
                ordered = sorted(self.lat)
                out = {
                    "p50": ordered[len(ordered) // 2],
                    "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                }
            print(json.dumps(out), flush=True)
            os._exit(0)


class Span:
    """Scale-out: counts handler runs, their first start and last end; printed on SIGTERM."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        self.cpu_first = self.cpu_last = 0.0

    def hit(self, _: float) -> None:
        now = time.time()
        # CPU from the first task's start to the last one's: start-up and idling left out.
        cpu = time.process_time()
        if not self.count:
            self.first, self.cpu_first = now, cpu
        self.count += 1
        self.last, self.cpu_last = now, cpu

    def report(self) -> None:
        out = {"count": self.count, "first": self.first, "last": self.last,
               "cpu": self.cpu_last - self.cpu_first}  # fmt: skip
        print(json.dumps(out), flush=True)
        os._exit(0)


def worker_main(system: str, mode: str, total: int, url: str, name: str) -> None:
    counter: Any = Span() if mode == "scale" else Counter(mode, total)
    if system == "huey":
        from huey import RedisHuey

        huey = RedisHuey(name, url=url, results=False)
        import threading

        lock = threading.Lock()

        @huey.task()
        def job(n: int, ts: float) -> None:
            with lock:
                counter.hit(ts)

        consumer = huey.create_consumer(workers=4, worker_type="thread", periodic=False)
        print("ready", flush=True)
        consumer.run()
        return
    asyncio.run(_async_worker(system, counter, url, name))


async def _async_worker(system: str, counter: Any, url: str, name: str) -> None:
    if system == "conveyor":
        import signal

        import conveyor

        backend = conveyor.open(url, prefix=name)

        async def handler(args: dict[str, Any]) -> None:
            counter.hit(args["ts"])

        worker = conveyor.Worker(backend, handler, concurrency=10, handle_signals=False)
        if isinstance(counter, Span):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, counter.report)
        print("ready", flush=True)
        await worker.run()
    elif system == "redis-py":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        print("ready", flush=True)
        while True:
            _, raw = await client.brpop([name], timeout=0)
            counter.hit(json.loads(raw)["ts"])
    elif system == "bare":
        # The scale-out ceiling: the least a reliable Redis consumer does per task
        # (move it to a list of its own, then remove it there once handled).
        import signal

        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, counter.report)
        mine = f"{name}:held:{os.getpid()}"
        print("ready", flush=True)
        while True:
            raw = await client.blmove(name, mine, 0, "RIGHT", "LEFT")
            counter.hit(json.loads(raw)["ts"])
            async with client.pipeline(transaction=False) as pipe:
                pipe.lrem(mine, 1, raw)
                pipe.incr(f"{name}:done")
                await pipe.execute()
    elif system == "saq":
        from saq import Queue, Worker

        queue = Queue.from_url(url, name=name)

        async def job(ctx: Any, *, n: int, ts: float) -> None:
            counter.hit(ts)

        worker = Worker(queue, functions=[("job", job)], concurrency=10)
        print("ready", flush=True)
        await worker.start()
    elif system == "taskiq":
        from taskiq.api import run_receiver_task
        from taskiq_redis import ListQueueBroker

        broker = ListQueueBroker(url, queue_name=name)

        @broker.task(task_name="job")
        async def job(n: int, ts: float) -> None:
            counter.hit(ts)

        broker.is_worker_process = True
        await broker.startup()
        print("ready", flush=True)
        await run_receiver_task(broker, max_async_tasks=10, run_startup=False)


# --- the producer side -------------------------------------------------------------------


class Producer:
    """Enqueue calls of one system: ``one(i)`` and ``bulk(items)`` (``None`` if it has none)."""

    def __init__(self, system: str, url: str, name: str) -> None:
        self.system, self.url, self.name = system, url, name
        self.bulk: Callable[[list[int]], Awaitable[None]] | None = None
        self.closers: list[Callable[[], Awaitable[None]]] = []

    async def open(self) -> Callable[[int], Awaitable[Any]]:
        system, url, name = self.system, self.url, self.name
        if system == "conveyor":
            import conveyor

            backend = conveyor.open(url, prefix=name)
            self.closers.append(backend.aclose)

            async def bulk(items: list[int]) -> None:
                await backend.push_many({"n": i, "ts": time.time()} for i in items)

            self.bulk = bulk
            return lambda i: backend.push({"n": i, "ts": time.time()})
        if system == "redis-py":
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(url)
            self.closers.append(client.aclose)

            async def pipelined(items: list[int]) -> None:
                for start in range(0, len(items), 1000):
                    async with client.pipeline(transaction=False) as pipe:
                        for i in items[start : start + 1000]:
                            pipe.lpush(name, json.dumps({"n": i, "ts": time.time()}))
                        await pipe.execute()

            self.bulk = pipelined
            return lambda i: client.lpush(name, json.dumps({"n": i, "ts": time.time()}))
        if system == "saq":
            from saq import Queue

            queue = Queue.from_url(url, name=name)
            await queue.connect()
            self.closers.append(queue.disconnect)
            return lambda i: queue.enqueue("job", n=i, ts=time.time())
        if system == "taskiq":
            from taskiq_redis import ListQueueBroker

            broker = ListQueueBroker(url, queue_name=name)

            @broker.task(task_name="job")
            async def job(n: int, ts: float) -> None:
                return None

            await broker.startup()
            self.closers.append(broker.shutdown)
            return lambda i: job.kiq(i, time.time())
        if system == "huey":
            from huey import RedisHuey

            huey = RedisHuey(name, url=url, results=False)

            @huey.task()
            def job(n: int, ts: float) -> None:
                return None

            async def one(i: int) -> None:
                job(i, time.time())  # huey's client is synchronous

            return one
        raise ValueError(system)

    async def close(self) -> None:
        for closer in self.closers:
            await closer()


def spawn(system: str, mode: str, total: int, url: str, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", system, "--mode", mode, "--total", str(total),
         "--url", url, "--name", name],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"{system} worker did not start: {line!r}")
    return proc


def result_of(proc: subprocess.Popen[str], timeout: float = 90) -> dict[str, float]:
    assert proc.stdout is not None
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    data: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return data


ROUNDS = 10
"""Enqueue 1-by-1 is timed in this many rounds, the systems taking turns in each,
and reported as the median round: on a shared or virtual machine a single long
run per system mostly measures which one the noise happened to hit."""


DRAINS = 3
"""Drains per system (refilled in between); the median is reported, for the same reason."""


async def enqueue_rounds(
    producers: dict[str, tuple[Producer, Callable[[int], Awaitable[Any]]]], n: int
) -> tuple[dict[str, float], list[float]]:
    """Push ``n`` tasks 1-by-1 (each awaited) with every system, in interleaved rounds.

    Returns each system's median rate and, per round, conveyor's rate over redis-py's
    in that same round: the systems take turns in a round, in alternating order, so a
    load change hits both sides of a pair alike (the order alternates so that neither
    always goes first after the other's cache-warming).
    """
    per_round = max(1, n // ROUNDS)
    rates: dict[str, list[float]] = {system: [] for system in producers}
    paired: list[float] = []
    order = list(producers.items())
    for round_ in range(ROUNDS):
        this: dict[str, float] = {}
        for system, (_, one) in order if round_ % 2 == 0 else reversed(order):
            start = time.perf_counter()
            for i in range(round_ * per_round, (round_ + 1) * per_round):
                await one(i)
            this[system] = per_round / (time.perf_counter() - start)
            rates[system].append(this[system])
        if "conveyor" in this and "redis-py" in this:
            paired.append(this["conveyor"] / this["redis-py"])
    return {system: statistics.median(values) for system, values in rates.items()}, paired


async def measure(system: str, url: str, n: int) -> dict[str, float | None]:
    """Drain ``n`` tasks with one worker process (``DRAINS`` times, median), then bulk enqueue."""
    name = f"bench-{system}-drain-{uuid.uuid4().hex[:6]}"
    producer = Producer(system, url, name)
    one = await producer.open()
    row: dict[str, float | None] = {}
    loop = asyncio.get_running_loop()
    drains = []
    for _ in range(DRAINS):
        for i in range(n):
            await one(i)
        proc = await loop.run_in_executor(None, spawn, system, "drain", n, url, name)
        drains.append(n / (await loop.run_in_executor(None, result_of, proc))["seconds"])
    row["drain"] = statistics.median(drains)
    row["enqueue_bulk"] = None
    if producer.bulk is not None:
        bulk_producer = Producer(system, url, name + "-bulk")
        await bulk_producer.open()
        assert bulk_producer.bulk is not None
        items = list(range(n * 4))
        start = time.perf_counter()
        await bulk_producer.bulk(items)
        row["enqueue_bulk"] = len(items) / (time.perf_counter() - start)
        await bulk_producer.close()
    await producer.close()
    return row


async def latency_once(system: str, url: str) -> dict[str, float]:
    """Enqueue-to-start latency: one idle worker process, tasks pushed one at a time."""
    name = f"bench-{system}-lat-{uuid.uuid4().hex[:6]}"
    producer = Producer(system, url, name)
    one = await producer.open()
    loop = asyncio.get_running_loop()
    proc = await loop.run_in_executor(None, spawn, system, "latency", LATENCY_TASKS, url, name)
    await asyncio.sleep(0.5)
    for i in range(LATENCY_TASKS):
        await one(i)
        await asyncio.sleep(LATENCY_GAP)
    lat = await loop.run_in_executor(None, result_of, proc)
    await producer.close()
    return {"p50_ms": lat["p50"] * 1000, "p99_ms": lat["p99"] * 1000}


def _busy_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far (``/proc/stat``, in ticks)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def scale_once(url: str, n: int, processes: int, system: str) -> dict[str, float]:
    """Drain ``n`` tasks pushed at once with ``processes`` idle worker processes.

    The workers are started and idle first; the ``n`` tasks are then stored in one
    MULTI/EXEC, so every worker sees them at the same moment and the producer's
    work is over before the first task starts. Rate = n / (last handler start -
    first handler start, over all processes). Also, over the drain: redis-server's
    CPU (INFO cpu) and the workers' (their own process time) per task, and how
    many of the machine's cores were busy (``/proc/stat``) and with what.
    """
    import redis.asyncio as aioredis
    from conveyor_redis.keys import Keys

    import conveyor
    from conveyor import Status

    name = f"bench-scale-{system}{processes}-{uuid.uuid4().hex[:6]}"
    loop = asyncio.get_running_loop()
    procs = [
        await loop.run_in_executor(None, spawn, system, "scale", n, url, name)
        for _ in range(processes)
    ]
    await asyncio.sleep(0.5)  # every worker idle, blocked on the server
    raw = aioredis.Redis.from_url(url)
    backend = conveyor.open(url, prefix=name)
    if system == "conveyor":
        await backend.push_many({"n": i, "ts": 0.0} for i in range(n))
        done_key = Keys(name).queue_status(backend.queue, Status.DONE)

        async def finished() -> int:
            return int(await raw.zcard(done_key))
    else:
        async with raw.pipeline(transaction=True) as pipe:
            for i in range(n):
                pipe.lpush(name, json.dumps({"n": i, "ts": 0.0}))
            await pipe.execute()

        async def finished() -> int:
            return int(await raw.get(f"{name}:done") or 0)

    cpu0 = await raw.info("cpu")
    busy0, total0 = _busy_jiffies()
    wall0, own0 = time.perf_counter(), time.process_time()
    while await finished() < n:  # noqa: ASYNC110 - other processes finish them
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - wall0
    own = time.process_time() - own0
    busy1, total1 = _busy_jiffies()
    cpu1 = await raw.info("cpu")
    outs = []
    for proc in procs:
        proc.terminate()
        assert proc.stdout is not None
        out, _ = await loop.run_in_executor(None, proc.communicate)
        outs.append(json.loads(out.strip().splitlines()[-1]))
    await backend.aclose()
    await raw.aclose()
    server = sum(float(cpu1[f]) - float(cpu0[f]) for f in ("used_cpu_user", "used_cpu_sys"))
    workers = sum(o["cpu"] for o in outs)
    span = max(o["last"] for o in outs) - min(o["first"] for o in outs if o["count"])
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / max(1, total1 - total0) * cores
    return {
        "rate": n / span,
        "server_us": server / n * 1e6,
        "worker_cpu_us": workers / n * 1e6,
        "counts": float(min(o["count"] for o in outs)),
        # Cores busy over the drain: the whole machine, and the part neither the
        # server, the workers nor this producer account for (other users' load).
        "machine_cores": machine,
        "others_cores": max(0.0, machine - (server + workers + own) / wall),
        "load": os.getloadavg()[0],
    }


def start_server() -> tuple[str, subprocess.Popen[bytes] | None, str | None]:
    url = os.environ.get("CONVEYOR_REDIS_URL")
    if url:
        return url, None, None
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench_redis: no redis-server on PATH and CONVEYOR_REDIS_URL is not set")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", folder, "--logfile", os.path.join(folder, "redis.log")],
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc, folder


def fmt(value: float | None, unit: str = "") -> str:
    return (
        "n/a" if value is None else f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"
    )


def _ratio(a: float | None, b: float | None) -> float:
    return (a or 0.0) / (b or 1.0)


async def main(n: int, systems: list[str], parts: set[str], runs: int, rounds: int) -> None:
    url, server, folder = start_server()
    report = Report("redis")
    try:
        print(f"Redis {url}; N={n}; load average {os.getloadavg()[0]:.2f} at start; 2 cores")
        if "enqueue" in parts:
            await enqueue_part(url, n, systems, runs, report)
        if "latency" in parts:
            await latency_part(url, systems, rounds, report)
        if "drain" in parts:
            await drain_part(url, n, systems, report)
        if "scale" in parts:
            await scale_part(url, n * 2, rounds, report)
        print(f"load average {os.getloadavg()[0]:.2f} at end")
        print(f"figures written to {report.save()}")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


async def enqueue_part(url: str, n: int, systems: list[str], runs: int, report: Report) -> None:
    """Enqueue 1-by-1, ``runs`` consecutive runs of interleaved rounds; each run's ratio."""
    producers = {}
    for system in systems:
        producer = Producer(system, url, f"bench-{system}-enq-{uuid.uuid4().hex[:6]}")
        one = await producer.open()
        await one(-1)  # connect and load scripts before timing
        producers[system] = (producer, one)
    per_run: dict[str, list[float]] = {system: [] for system in systems}
    ratios: list[float] = []
    for run in range(runs):
        rates, paired = await enqueue_rounds(producers, n)
        for system, rate in rates.items():
            per_run[system].append(rate)
        if paired:
            # The median of the rounds' own ratios: each pair ran back to back.
            ratios.append(statistics.median(paired))
            print(f"enqueue 1-by-1 run {run + 1}: conveyor / redis-py LPUSH = {ratios[-1]:.3f}x"
                  f" (median of {len(paired)} paired rounds; load"
                  f" {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
    for system, values in per_run.items():
        report.add("enqueue 1-by-1", system, statistics.median(values))
        print(f"{system:10} enqueue 1-by-1 {fmt(statistics.median(values))}/s"
              f" (median of {runs} runs x {ROUNDS} rounds)")  # fmt: skip
    if ratios:
        report.add("enqueue 1-by-1, conveyor / redis-py LPUSH (worst run)", "conveyor",
                   min(ratios), unit="x")  # fmt: skip
        held = min(ratios) >= 0.95
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"enqueue 1-by-1: conveyor / redis-py per run {each}"
              f" (target >= 0.95x in every run: {'met' if held else 'NOT met'})")  # fmt: skip
    for producer, _ in producers.values():
        await producer.close()


async def latency_part(url: str, systems: list[str], rounds: int, report: Report) -> None:
    """p50 / p99 enqueue-to-start, ``rounds`` interleaved rounds, median per system."""
    p50: dict[str, list[float]] = {s: [] for s in systems if s != "redis-py"}
    p99: dict[str, list[float]] = {s: [] for s in p50}
    for _ in range(rounds):
        for system in p50:
            try:
                lat = await latency_once(system, url)
            except (subprocess.TimeoutExpired, RuntimeError, ValueError) as exc:
                print(f"{system:10} latency failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            p50[system].append(lat["p50_ms"])
            p99[system].append(lat["p99_ms"])
    medians = {s: statistics.median(v) for s, v in p50.items() if v}
    for system, value in medians.items():
        report.add("latency p50", system, value, unit="ms", higher_is_better=False)
        each = ", ".join(f"{v:.2f}" for v in p50[system])
        tail = statistics.median(p99[system])
        report.add("latency p99", system, tail, unit="ms", higher_is_better=False)
        print(f"{system:10} latency p50 {value:.3f} ms  p99 {tail:.2f} ms"
              f" (median of {len(p50[system])} rounds: {each})", flush=True)  # fmt: skip
    peers = {s: v for s, v in medians.items() if s != "conveyor"}
    if "conveyor" in medians and peers:
        best = min(peers, key=lambda s: peers[s])
        ratio = medians["conveyor"] / peers[best]
        print(f"latency p50: conveyor / best peer ({best}) = {ratio:.3f}x"
              f" (target <= 1.0x: {'met' if ratio <= 1.0 else 'NOT met'})")  # fmt: skip


async def drain_part(url: str, n: int, systems: list[str], report: Report) -> None:
    rows = {}
    for system in systems:
        try:
            rows[system] = await measure(system, url, n)
        except (subprocess.TimeoutExpired, RuntimeError, ValueError) as exc:
            print(f"{system:10} failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        r = rows[system]
        report.add("drain", system, r["drain"] or 0.0)
        if r["enqueue_bulk"] is not None:
            report.add("enqueue bulk", system, r["enqueue_bulk"])
        print(f"{system:10} bulk {fmt(r['enqueue_bulk'])}/s"
              f"  drain {fmt(r['drain'])}/s (median of {DRAINS})", flush=True)  # fmt: skip
    if "conveyor" in rows:
        peers = {s: r for s, r in rows.items() if s not in ("conveyor", "redis-py")}
        if peers:
            best = max(peers, key=lambda s: peers[s]["drain"] or 0)
            ratio = _ratio(rows["conveyor"]["drain"], peers[best]["drain"])
            print(f"drain: conveyor / best peer ({best}) = {ratio:.2f}x")


SCALE_SYSTEMS = ("conveyor", "bare")


async def scale_part(url: str, n: int, rounds: int, report: Report) -> None:
    """1 and 2 worker processes on one queue, conveyor and the bare consumer taking
    turns (1, 2, 2, 1, ... so drift hits both counts alike), ``rounds`` times each;
    the ratio is the median of the rounds' own 2-vs-1 ratios."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    speedups: dict[str, list[float]] = {s: [] for s in SCALE_SYSTEMS}
    for round_ in range(rounds):
        for system in SCALE_SYSTEMS:
            this = {}
            for k in (1, 2) if round_ % 2 == 0 else (2, 1):
                this[k] = await scale_once(url, n, k, system)
                runs.setdefault((system, k), []).append(this[k])
            speedups[system].append(this[2]["rate"] / this[1]["rate"])
            print(f"scale-out round {round_ + 1} {system:8}: 1 process {fmt(this[1]['rate'])}/s,"
                  f" 2 {fmt(this[2]['rate'])}/s = {speedups[system][-1]:.2f}x; cores busy"
                  f" {this[1]['machine_cores']:.2f} / {this[2]['machine_cores']:.2f}, of which"
                  f" other users' {this[1]['others_cores']:.2f} / {this[2]['others_cores']:.2f};"
                  f" load {this[2]['load']:.2f}", flush=True)  # fmt: skip
    for (system, k), values in runs.items():
        m = {f: statistics.median(r[f] for r in values) for f in values[0]}
        report.add(f"scale-out drain, {k} worker process(es)", system, m["rate"])
        print(f"{system:8} {k} process(es): {fmt(m['rate'])}/s; per task redis-server"
              f" {m['server_us']:.1f} us CPU, workers {m['worker_cpu_us']:.1f} us CPU;"
              f" machine cores busy {m['machine_cores']:.2f}, other users'"
              f" {m['others_cores']:.2f} (fewest tasks one process ran:"
              f" {m['counts']:.0f})")  # fmt: skip
    ours, bare = (statistics.median(speedups[s]) for s in SCALE_SYSTEMS)
    report.add("scale-out, 2 worker processes / 1", "conveyor", ours, unit="x")
    report.add("scale-out, 2 worker processes / 1", "bare BLMOVE consumer", bare, unit="x")
    print(f"scale-out: 2 processes / 1 = {ours:.2f}x (median of {rounds} paired rounds:"
          f" {', '.join(f'{v:.2f}' for v in speedups['conveyor'])}; target >= 1.6x:"
          f" {'met' if ours >= 1.6 else 'NOT met'}); the bare BLMOVE consumer pair in the"
          f" same run: {bare:.2f}x"
          f" ({', '.join(f'{v:.2f}' for v in speedups['bare'])})")  # fmt: skip
    m1 = {f: statistics.median(r[f] for r in runs["conveyor", 1]) for f in runs["conveyor", 1][0]}
    ceiling = 2e6 / (m1["server_us"] + m1["worker_cpu_us"])
    print(f"profile: per task redis-server {m1['server_us']:.1f} us + worker"
          f" {m1['worker_cpu_us']:.1f} us of CPU: with both cores free for them, at most"
          f" {fmt(ceiling)}/s, {ceiling / m1['rate']:.2f}x the 1-process rate")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--parts", default="enqueue,latency,drain,scale")
    parser.add_argument("--runs", type=int, default=5, help="enqueue runs (each of 10 rounds)")
    parser.add_argument("--rounds", type=int, default=5, help="latency and scale-out rounds")
    parser.add_argument("--worker")
    parser.add_argument("--mode")
    parser.add_argument("--total", type=int)
    parser.add_argument("--url")
    parser.add_argument("--name")
    opts = parser.parse_args()
    if opts.worker:
        worker_main(opts.worker, opts.mode, opts.total, opts.url, opts.name)
    else:
        parts = set(opts.parts.split(","))
        asyncio.run(main(opts.n, opts.systems.split(","), parts, opts.runs, opts.rounds))

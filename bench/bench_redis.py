"""conveyor-redis against raw redis-py, saq, taskiq-redis and huey, on one Redis in one run.

    make bench/.venv/.installed && bench/.venv/bin/python bench/bench_redis.py [--n 5000]

Starts its own redis-server on a free loopback port (no persistence) unless
CONVEYOR_REDIS_URL is set. For each system: enqueue N tasks one by one (each
awaited; the systems take turns in 10 rounds and the median round is reported),
enqueue 4N in bulk (where the library has a bulk call), drain the N tasks
with one worker process (three times, refilled in between, median reported;
timed inside the worker, from its first task's start to its N-th task's end,
so process start-up is excluded), and the enqueue→start latency of tasks pushed
one at a time to an idle worker.
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


def worker_main(system: str, mode: str, total: int, url: str, name: str) -> None:
    counter = Counter(mode, total)
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


async def _async_worker(system: str, counter: Counter, url: str, name: str) -> None:
    if system == "conveyor":
        import conveyor

        backend = conveyor.open(url, prefix=name)

        async def handler(args: dict[str, Any]) -> None:
            counter.hit(args["ts"])

        worker = conveyor.Worker(backend, handler, concurrency=10, handle_signals=False)
        print("ready", flush=True)
        await worker.run()
    elif system == "redis-py":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        print("ready", flush=True)
        while True:
            _, raw = await client.brpop([name], timeout=0)
            counter.hit(json.loads(raw)["ts"])
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
) -> dict[str, float]:
    """Push ``n`` tasks 1-by-1 (each awaited) with every system, in interleaved rounds."""
    per_round = max(1, n // ROUNDS)
    rates: dict[str, list[float]] = {system: [] for system in producers}
    for round_ in range(ROUNDS):
        for system, (_, one) in producers.items():
            start = time.perf_counter()
            for i in range(round_ * per_round, (round_ + 1) * per_round):
                await one(i)
            rates[system].append(per_round / (time.perf_counter() - start))
    return {system: statistics.median(values) for system, values in rates.items()}


async def measure(
    system: str, producer: Producer, one: Callable[[int], Awaitable[Any]], url: str, n: int
) -> dict[str, float | None]:
    """Drain the ``n`` tasks already enqueued, then bulk enqueue and latency."""
    name = producer.name
    row: dict[str, float | None] = {}
    # Drain the N tasks enqueued one by one, with one worker process; then refill
    # and drain again, DRAINS times in all, and keep the median.
    loop = asyncio.get_running_loop()
    drains = []
    for repeat in range(DRAINS):
        if repeat:
            for i in range(n):
                await one(i)
        proc = await loop.run_in_executor(None, spawn, system, "drain", n, url, name)
        drains.append(n / (await loop.run_in_executor(None, result_of, proc))["seconds"])
    row["drain"] = statistics.median(drains)
    row["enqueue_bulk"] = None
    if producer.bulk is not None:
        bulk_name = name + "-bulk"
        bulk_producer = Producer(system, url, bulk_name)
        await bulk_producer.open()
        assert bulk_producer.bulk is not None
        items = list(range(n * 4))
        start = time.perf_counter()
        await bulk_producer.bulk(items)
        row["enqueue_bulk"] = len(items) / (time.perf_counter() - start)
        await bulk_producer.close()
    # Latency: one idle worker, tasks pushed one at a time.
    proc = await loop.run_in_executor(None, spawn, system, "latency", LATENCY_TASKS, url, name)
    await asyncio.sleep(0.5)
    for i in range(LATENCY_TASKS):
        await one(i)
        await asyncio.sleep(LATENCY_GAP)
    lat = await loop.run_in_executor(None, result_of, proc)
    row["p50_ms"], row["p99_ms"] = lat["p50"] * 1000, lat["p99"] * 1000
    await producer.close()
    return row


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


async def main(n: int, systems: list[str]) -> None:
    url, server, folder = start_server()
    try:
        print(f"Redis {url}; N={n}; load average {os.getloadavg()[0]:.2f} at start; 2 cores")
        producers = {}
        for system in systems:
            producer = Producer(system, url, f"bench-{system}-{uuid.uuid4().hex[:6]}")
            one = await producer.open()
            await one(-1)  # connect and load scripts before timing
            producers[system] = (producer, one)
        # Each round pushes n / ROUNDS per system: n tasks in all, which the drain takes.
        enqueued = ROUNDS * max(1, n // ROUNDS) + 1
        one_by_one = await enqueue_rounds(producers, n)
        rows = {}
        for system, (producer, one) in producers.items():
            try:
                rows[system] = await measure(system, producer, one, url, enqueued)
            except (subprocess.TimeoutExpired, RuntimeError, ValueError) as exc:
                print(f"{system:10} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            rows[system]["enqueue_one"] = one_by_one[system]
            r = rows[system]
            print(
                f"{system:10} enqueue 1-by-1 {fmt(r['enqueue_one'])}/s (median of {ROUNDS})"
                f"  bulk {fmt(r['enqueue_bulk'])}/s"
                f"  drain {fmt(r['drain'])}/s (median of {DRAINS})"
                f"  latency p50 {fmt(r['p50_ms'])} ms"
                f" p99 {fmt(r['p99_ms'])} ms",
                flush=True,
            )
        print(f"load average {os.getloadavg()[0]:.2f} at end")
        if "conveyor" in rows:
            ours = rows["conveyor"]
            peers = {s: r for s, r in rows.items() if s not in ("conveyor", "redis-py")}
            if peers:
                best = max(peers, key=lambda s: peers[s]["drain"] or 0)
                ratio = (ours["drain"] or 0) / (peers[best]["drain"] or 1)
                verdict = "met" if ratio >= 2 else "NOT met"
                print(
                    f"drain: conveyor / best peer ({best}) = {ratio:.2f}x (target >= 2x: {verdict})"
                )
            if "redis-py" in rows:
                raw = rows["redis-py"]
                ratio = (ours["enqueue_one"] or 0) / (raw["enqueue_one"] or 1)
                verdict = "met" if ratio >= 0.9 else "NOT met"
                print(
                    f"enqueue 1-by-1: conveyor / raw redis-py LPUSH = {ratio:.2f}x"
                    f" (target >= 0.9x: {verdict})"
                )
                print(
                    f"drain: conveyor / raw redis-py BRPOP loop = "
                    f"{(ours['drain'] or 0) / (raw['drain'] or 1):.2f}x (no target; the floor of a"
                    " one-round-trip-per-task consumer)"
                )
    finally:
        if server is not None:
            server.kill()
            server.wait()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--worker")
    parser.add_argument("--mode")
    parser.add_argument("--total", type=int)
    parser.add_argument("--url")
    parser.add_argument("--name")
    opts = parser.parse_args()
    if opts.worker:
        worker_main(opts.worker, opts.mode, opts.total, opts.url, opts.name)
    else:
        asyncio.run(main(opts.n, opts.systems.split(",")))

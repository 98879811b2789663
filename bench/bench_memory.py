"""Memory backend + Worker: drain, enqueue, latency and dispatch cost, against peers.

Run: make bench/.venv/.installed && bench/.venv/bin/python bench/bench_memory.py [N]

Prints, in one run: drain throughput (push N no-op tasks, then one worker
drains them), enqueue throughput, enqueue->start latency p50/p99 with one task
in flight, the registry/pluggy dispatch cost (facade hook vs plugin method),
the cost of routing by task name (an App's worker against the single-handler
worker, interleaved rounds, median ratio), and for comparison the same drain
with huey's MemoryHuey, dramatiq's StubBroker, and an asyncio.Queue
producer/consumer pair. Each figure is the best of ``REPEAT`` runs; the
machine's load average is printed with them, since other processes share the CPU.
The figures are also written to bench/results/memory.json (``report.Report``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from report import Report

import conveyor
from conveyor import Worker

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
REPEAT = 3
ROUTING_ROUNDS = 11
ROUTING_NAMES = 20
LATENCY_SAMPLES = 2_000


def best(runs: list[float]) -> float:
    return max(runs)


def timed(label: str, count: int, seconds: float) -> float:
    rate = count / seconds
    print(f"  {label:<44} {rate:>12,.0f} tasks/s  ({seconds * 1e6 / count:.2f} us/task)")
    return rate


# --- conveyor ----------------------------------------------------------------------


async def noop(_: Any) -> None:
    return None


async def conveyor_drain() -> float:
    rates = []
    for _ in range(REPEAT):
        async with conveyor.open("memory") as backend:
            await backend.push_many([None] * N)
            worker = Worker(backend, noop, handle_signals=False)
            gc.collect()
            start = time.perf_counter()
            await worker.run(burst=True)
            elapsed = time.perf_counter() - start
            assert worker.succeeded == N, worker.succeeded
            rates.append(N / elapsed)
    return best(rates)


async def _drain_named(routed: bool) -> float:
    """Seconds to drain N no-op tasks spread over ROUTING_NAMES names: with one handler
    (which ignores names) or with an app's worker routing each name to its own task."""
    async with conveyor.open("memory") as backend:
        app = conveyor.App(backend)
        for index in range(ROUTING_NAMES):
            app.task(name=f"bench.noop{index}")(noop)
        share = N // ROUTING_NAMES
        for index in range(ROUTING_NAMES):
            await backend.push_many([None] * share, name=f"bench.noop{index}")
        worker: Any = (
            app.worker(backend, handle_signals=False)
            if routed
            else Worker(backend, noop, handle_signals=False)
        )
        gc.collect()
        # CPU time of this process: the drain is one busy thread, and on a shared
        # machine wall time mostly measures the neighbours.
        start = time.process_time()
        await worker.run(burst=True)
        elapsed = time.process_time() - start
        assert worker.succeeded == share * ROUTING_NAMES, worker.succeeded
    return elapsed


async def routing_overhead() -> tuple[float, list[float]]:
    """Routed time / single-handler time per round, rounds interleaved (order alternating)."""
    ratios = []
    for round_ in range(ROUTING_ROUNDS):
        if round_ % 2:
            routed = await _drain_named(True)
            single = await _drain_named(False)
        else:
            single = await _drain_named(False)
            routed = await _drain_named(True)
        ratios.append(routed / single)
    return statistics.median(ratios), ratios


async def conveyor_enqueue() -> tuple[float, float]:
    singles, batches = [], []
    for _ in range(REPEAT):
        async with conveyor.open("memory") as backend:
            gc.collect()
            start = time.perf_counter()
            for _ in range(N):
                await backend.push(None)
            singles.append(N / (time.perf_counter() - start))
        async with conveyor.open("memory") as backend:
            items = [None] * N
            gc.collect()
            start = time.perf_counter()
            for at in range(0, N, 1000):
                await backend.push_many(items[at : at + 1000])
            batches.append(N / (time.perf_counter() - start))
    return best(singles), best(batches)


async def conveyor_latency() -> tuple[float, float]:
    """Push one task, time until its handler starts; one task in flight at a time."""
    async with conveyor.open("memory") as backend:
        started = asyncio.Event()
        stamps: list[float] = []

        async def handler(_: Any) -> None:
            stamps.append(time.perf_counter())
            started.set()

        worker = Worker(backend, handler, concurrency=1, handle_signals=False)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.05)  # let it reach its idle wait
        delays = []
        for _ in range(LATENCY_SAMPLES):
            started.clear()
            pushed = time.perf_counter()
            await backend.push(None)
            await started.wait()
            delays.append(stamps[-1] - pushed)
        worker.stop()
        await running
    delays.sort()
    return statistics.median(delays), delays[int(len(delays) * 0.99)]


async def per_call(call: Callable[[], Awaitable[Any]], count: int) -> float:
    best_time = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        for _ in range(count):
            await call()
        best_time = min(best_time, (time.perf_counter() - start) / count)
    return best_time


async def dispatch_cost() -> tuple[float, float, float]:
    """Seconds per call of one hook: via the facade's resolved hooks, direct, via pluggy."""
    async with conveyor.open("memory") as backend:
        task_id = await backend.push(None)
        plugin: Any = backend.plugin
        manager_hook = _pluggy_caller(backend)
        count = 200_000
        facade = await per_call(lambda: backend.hooks.fetch_by_id(task_id), count)
        direct = await per_call(lambda: plugin.fetch_by_id(task_id), count)
        through_pluggy = await per_call(lambda: manager_hook(task_id=task_id), count)
    return facade, direct, through_pluggy


def _pluggy_caller(backend: conveyor.Backend) -> Any:
    """What a per-call pluggy dispatch would cost: the hook caller the facade resolved from."""
    import pluggy

    from conveyor import hookspecs
    from conveyor.markers import PROJECT

    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(backend.plugin, name="bench")
    return manager.hook.fetch_by_id


# --- peers -------------------------------------------------------------------------


async def _conveyor_drain_cpu(count: int) -> float:
    async with conveyor.open("memory") as backend:
        await backend.push_many([None] * count)
        worker = Worker(backend, noop, handle_signals=False)
        gc.collect()
        start = time.process_time()
        await worker.run(burst=True)
        return time.process_time() - start


def _huey_nothing() -> tuple[Any, Any]:
    """A fresh MemoryHuey and its no-op task (the peer of every huey figure here)."""
    from huey import MemoryHuey

    huey = MemoryHuey(utc=True)

    @huey.task()
    def nothing() -> None:
        return None

    return huey, nothing


def _huey_drain_cpu(count: int) -> float:
    import threading

    from huey.consumer import Worker as HueyWorker

    huey, nothing = _huey_nothing()

    for _ in range(count):
        nothing()
    worker = HueyWorker(huey, threading.Event(), 0.1, 10.0, 1.15)
    gc.collect()
    start = time.process_time()
    for _ in range(count):
        worker.loop()
    return time.process_time() - start


async def huey_ratio() -> tuple[float, list[float]] | None:
    """conveyor's drain speed over MemoryHuey's, from CPU time in interleaved rounds
    (both drains are one busy thread, so CPU time is what a loaded machine leaves
    comparable); the median of ROUTING_ROUNDS."""
    try:
        import huey  # noqa: F401
    except ImportError:
        return None
    ratios = []
    count = max(1, N // 2)
    for round_ in range(ROUTING_ROUNDS):
        if round_ % 2:
            theirs = _huey_drain_cpu(count)
            ours = await _conveyor_drain_cpu(count)
        else:
            ours = await _conveyor_drain_cpu(count)
            theirs = _huey_drain_cpu(count)
        ratios.append(theirs / ours)
    return statistics.median(ratios), ratios


def huey_drain() -> float | None:
    try:
        import threading

        from huey.consumer import Worker as HueyWorker
    except ImportError:
        return None
    rates = []
    for _ in range(REPEAT):
        huey, nothing = _huey_nothing()

        for _ in range(N):
            nothing()
        # The consumer's own worker, its loop driven here without the consumer's threads.
        worker = HueyWorker(huey, threading.Event(), 0.1, 10.0, 1.15)
        gc.collect()
        start = time.perf_counter()
        for _ in range(N):
            worker.loop()
        rates.append(N / (time.perf_counter() - start))
        assert worker.task_count == N and huey.pending_count() == 0
    return best(rates)


def _dramatiq_actor(dramatiq: Any, counter: list[int], round_: int) -> Any:
    @dramatiq.actor(queue_name="bench", actor_name=f"nothing{round_}", max_retries=0)
    def nothing() -> None:
        counter[0] += 1

    return nothing


def dramatiq_drain() -> float | None:
    try:
        import dramatiq
        from dramatiq.brokers.stub import StubBroker
    except ImportError:
        return None
    rates = []
    for round_ in range(REPEAT):
        broker = StubBroker()
        broker.emit_after("process_boot")
        dramatiq.set_broker(broker)
        counter = [0]
        nothing = _dramatiq_actor(dramatiq, counter, round_)

        for _ in range(N):
            nothing.send()
        gc.collect()
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        start = time.perf_counter()
        worker.start()
        broker.join("bench", fail_fast=True)
        elapsed = time.perf_counter() - start
        worker.stop()
        broker.close()
        assert counter[0] == N, counter[0]
        rates.append(N / elapsed)
    return best(rates)


async def _pair_once(queue: asyncio.Queue[Any]) -> None:
    async def producer() -> None:
        for n in range(N):
            await queue.put(n)

    async def consumer() -> None:
        for _ in range(N):
            await noop(await queue.get())

    await asyncio.gather(producer(), consumer())


async def queue_pair() -> float:
    """The raw limit: a producer and a consumer over an asyncio.Queue, no-op handler."""
    rates = []
    for _ in range(REPEAT):
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        gc.collect()
        start = time.perf_counter()
        await _pair_once(queue)
        rates.append(N / (time.perf_counter() - start))
    return best(rates)


# --- report ------------------------------------------------------------------------


def huey_enqueue() -> float | None:
    """MemoryHuey's enqueue rate: calling a task, one at a time (best of REPEAT)."""
    if importlib.util.find_spec("huey") is None:
        return None
    rates = []
    for _ in range(REPEAT):
        _, nothing = _huey_nothing()

        gc.collect()
        start = time.perf_counter()
        for _ in range(N):
            nothing()
        rates.append(N / (time.perf_counter() - start))
    return best(rates)


async def main() -> None:
    report = Report("memory")
    load = os.getloadavg()
    print(
        f"bench_memory: N={N:,}, best of {REPEAT}, Python {sys.version.split()[0]},"
        f" {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("conveyor (memory backend, one Worker, default concurrency 10):")
    drain = timed("drain (no-op async handler)", 1, 1 / await conveyor_drain())
    single, batch = await conveyor_enqueue()
    timed("enqueue, push() one at a time", 1, 1 / single)
    timed("enqueue, push_many() 1,000 at a time", 1, 1 / batch)
    p50, p99 = await conveyor_latency()
    label = "enqueue->start latency, 1 in flight"
    print(f"  {label:<44} p50 {p50 * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms")
    facade, direct, pluggy_call = await dispatch_cost()
    per_task = 1 / drain
    overhead = max(0.0, facade - direct)
    print(
        f"  {'hook call (fetch_by_id)':<44} facade {facade * 1e6:.3f} us,"
        f" direct {direct * 1e6:.3f} us, through pluggy {pluggy_call * 1e6:.3f} us"
    )
    print(
        f"  {'dispatch cost per hook call':<44} {overhead * 1e6:.3f} us ="
        f" {100 * overhead / per_task:.1f}% of the per-task cost ({per_task * 1e6:.2f} us);"
        f" via pluggy it would be {100 * max(0.0, pluggy_call - direct) / per_task:.1f}%"
    )
    routing, ratios = await routing_overhead()
    print(
        f"  {'routing by name (App worker, ' + str(ROUTING_NAMES) + ' tasks)':<44}"
        f" {100 * (routing - 1):+.1f}% per task vs one handler, median of {ROUTING_ROUNDS}"
        f" interleaved rounds ({', '.join(f'{r:.3f}' for r in ratios)})"
    )
    print("peers (same N, no-op task):")
    huey = huey_drain()
    huey_push = huey_enqueue()
    dramatiq_rate = dramatiq_drain()
    pair = await queue_pair()
    if huey is not None:
        timed("huey MemoryHuey drain (its Worker.loop)", 1, 1 / huey)
    else:
        print("  huey not installed (bench/requirements.txt)")
    if dramatiq_rate is not None:
        timed("dramatiq StubBroker drain (1 worker thread)", 1, 1 / dramatiq_rate)
    else:
        print("  dramatiq not installed (bench/requirements.txt)")
    timed("asyncio.Queue producer/consumer pair", 1, 1 / pair)
    if huey_push is not None:
        timed("huey MemoryHuey enqueue, one at a time", 1, 1 / huey_push)
    versus_huey = await huey_ratio()
    if versus_huey is not None:
        print(
            f"  {'conveyor drain / MemoryHuey drain (CPU time)':<44} {versus_huey[0]:.2f}x,"
            f" median of {ROUTING_ROUNDS} interleaved rounds"
            f" ({', '.join(f'{r:.2f}' for r in versus_huey[1])})"
        )
    print("targets:")
    checks = [
        ("drain >= 150,000 tasks/s", drain >= 150_000, f"{drain:,.0f}"),
        ("latency p50 <= 0.1 ms", p50 <= 1e-4, f"{p50 * 1e3:.3f} ms"),
        (
            "dispatch <= 5% of per-task cost",
            overhead <= 0.05 * per_task,
            f"{100 * overhead / per_task:.1f}%",
        ),
        ("routing overhead <= 5% per task", routing <= 1.05, f"{100 * (routing - 1):+.1f}%"),
        ("drain >= 0.7x asyncio.Queue pair", drain >= 0.7 * pair, f"{drain / pair:.2f}x"),
    ]
    if huey is not None:
        checks.append(
            ("drain >= 2.0x MemoryHuey (best of)", drain >= 2.0 * huey, f"{drain / huey:.2f}x")
        )
    if versus_huey is not None:
        ratio = versus_huey[0]
        checks.append(("drain >= 2.0x MemoryHuey (interleaved)", ratio >= 2.0, f"{ratio:.2f}x"))
    if dramatiq_rate is not None:
        checks.append(("(info) vs dramatiq StubBroker", True, f"{drain / dramatiq_rate:.2f}x"))
    for name, ok, value in checks:
        print(f"  {'met ' if ok else 'MISS'}  {name:<36} {value}")
    report.add("drain, best of runs", "conveyor", drain)
    report.add("enqueue, one at a time", "conveyor", single)
    report.add("enqueue, push_many 1,000", "conveyor", batch)
    report.add("latency p50, 1 in flight", "conveyor", p50 * 1e3, unit="ms", higher_is_better=False)
    report.add("latency p99, 1 in flight", "conveyor", p99 * 1e3, unit="ms", higher_is_better=False)
    report.add("routing by name, cost per task", "conveyor", 100 * (routing - 1), unit="%",
               higher_is_better=False)  # fmt: skip
    report.add("drain, best of runs", "asyncio.Queue pair", pair)
    if huey is not None:
        report.add("drain, best of runs", "huey MemoryHuey", huey)
    if huey_push is not None:
        report.add("enqueue, one at a time", "huey MemoryHuey", huey_push)
    if dramatiq_rate is not None:
        report.add("drain, best of runs", "dramatiq StubBroker", dramatiq_rate)
    if versus_huey is not None:
        report.add("drain / MemoryHuey's (CPU time, interleaved median)", "conveyor",
                   versus_huey[0], unit="x")  # fmt: skip
    print(f"figures written to {report.save()}")


if __name__ == "__main__":
    asyncio.run(main())

"""A blocking push (``conveyor.blocking``, from a thread) against the async push, same run.

    nice .venv/bin/python bench/bench_sync.py [--n 2000] [--rounds 11] [--backends json,redis]

For each backend: N pushes one at a time, each awaited (the baseline: ``await
backend.push`` in ``asyncio.run``), and N blocking pushes from a plain thread
(``BlockingBackend.push``), into the same store. The two take turns for
``--rounds`` rounds (the order swapped every round); each round's time per
push is measured around the N pushes only (opening and a warm-up excluded). The
figure is the median of the per-round ratios sync/async, beside the medians of
the per-push times. Redis: ``CONVEYOR_REDIS_URL`` or 127.0.0.1:6379, under a
prefix of its own, deleted afterwards.

``--threads K`` adds a line for K threads pushing at once (the wall time per
push over all of them) against K asyncio tasks pushing at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import conveyor
from conveyor.blocking import BlockingBackend

WARM_UP = 50


def _async_round(open_backend: Callable[[], conveyor.Backend], n: int, tasks: int) -> float:
    async def main() -> float:
        backend = open_backend()
        try:
            for i in range(WARM_UP):
                await backend.push({"n": i})

            async def pusher(count: int) -> None:
                for i in range(count):
                    await backend.push({"n": i})

            start = time.perf_counter()
            await asyncio.gather(*(pusher(n // tasks) for _ in range(tasks)))
            return (time.perf_counter() - start) / (n // tasks * tasks)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def _sync_round(blocking: BlockingBackend, n: int, threads: int) -> float:
    for i in range(WARM_UP):
        blocking.push({"n": i})
    per = n // threads
    barrier = threading.Barrier(threads + 1)

    def pusher() -> None:
        barrier.wait()
        for i in range(per):
            blocking.push({"n": i})

    workers = [threading.Thread(target=pusher) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - start) / (per * threads)


def measure(name: str, url: str, config: dict[str, Any], n: int, rounds: int, threads: int) -> None:
    def open_backend() -> conveyor.Backend:
        return conveyor.open(url, **config)

    # The default (direct lanes: the push runs in the calling thread) and every
    # call through the private loop's thread (lanes=0), both against the async push.
    modes = {
        "sync": BlockingBackend(url, **config),
        "sync-via-loop": BlockingBackend(url, lanes=0, **config),
    }
    times: dict[str, list[float]] = {"async": [], **{mode: [] for mode in modes}}
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    order = ["async", *modes]
    for index in range(rounds):
        got: dict[str, float] = {}
        for side in order[index % len(order) :] + order[: index % len(order)]:
            if side == "async":
                got[side] = _async_round(open_backend, n, threads)
            else:
                got[side] = _sync_round(modes[side], n, threads)
        for side, seconds in got.items():
            times[side].append(seconds)
            if side != "async":
                ratios[side].append(seconds / got["async"])
    for blocking in modes.values():
        blocking.close()
    label = f"{name} x{threads}" if threads > 1 else name
    line = f"{label:9} async {statistics.median(times['async']) * 1e6:6.1f} us/push"
    for mode in modes:
        line += (
            f" | {mode} {statistics.median(times[mode]) * 1e6:6.1f} us/push,"
            f" ratio {statistics.median(ratios[mode]):.2f}"
            f" ({min(ratios[mode]):.2f}..{max(ratios[mode]):.2f})"
        )
    print(line, flush=True)


def _cleanup_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="pushes per round and side")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--backends", default="json,redis")
    parser.add_argument("--threads", type=int, default=0, help="also K threads at once")
    options = parser.parse_args()
    chosen = options.backends.split(",")
    print(f"N={options.n} per round and side, {options.rounds} rounds interleaved", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as folder:
        for name in chosen:
            for threads in [1] + ([options.threads] if options.threads > 1 else []):
                if name == "json":
                    url = f"json://{folder}/{threads}.json"
                    measure(name, url, {}, options.n, options.rounds, threads)
                elif name == "redis":
                    url = os.environ.get("CONVEYOR_REDIS_URL", "redis://127.0.0.1:6379/0")
                    prefix = f"bench-sync-{uuid.uuid4().hex[:8]}"
                    try:
                        measure(name, url, {"prefix": prefix}, options.n, options.rounds, threads)
                    finally:
                        _cleanup_redis(url, prefix)
                else:
                    raise SystemExit(f"unknown backend {name!r}: choose json and/or redis")


if __name__ == "__main__":
    main()

"""conveyor-postgres against procrastinate, pgqueuer and bare psycopg, on one PostgreSQL in one run.

    make bench/.venv/.installed && nice bench/.venv/bin/python bench/bench_postgres.py [--n 5000]

Server: CONVEYOR_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test. Each
system gets a database of its own (created here, dropped after), so none sees
another's tables. Every figure is a ratio against a baseline measured in the same
run, the median of interleaved rounds:

- drain: N no-op tasks, one worker process, timed inside the worker from its first
  task's start to its N-th task's end (process start-up excluded); conveyor vs
  procrastinate and vs pgqueuer (procrastinate drains N/5: its rate is the figure);
- enqueue one by one: conveyor's push vs a bare psycopg INSERT of the same row into
  the same table, one by one on one connection, autocommit;
- bulk push: push_many of 50,000 tasks (COPY), in tasks per second;
- latency: enqueue to handler start with an idle worker, p50 of tasks pushed one
  at a time;
- claim cost with 1,000,000 stored tasks (999,000 of them Done) against 1,000: both
  tables built first (two schemas), a CHECKPOINT, then samples alternating between them;
- scale-out: the same drain with 2 worker processes against 1 (issue 16).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_URL = os.environ.get("CONVEYOR_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONCURRENCY = 100
LATENCY_TASKS = 100
LATENCY_GAP = 0.05  # seconds between pushes: longer than a claim and an ack, so the worker is idle


def db_url(name: str) -> str:
    parts = urlsplit(BASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


# --- worker processes ------------------------------------------------------------------


class Counter:
    """Counts handler starts; prints the drain time or the latencies at ``total``."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode, self.total = mode, total
        self.count = 0
        self.first = 0.0
        self.lat: list[tuple[float, float]] = []

    def hit(self, ts: float) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
            if self.mode == "scale":
                print(json.dumps({"first": time.time()}), flush=True)
        self.count += 1
        if self.mode == "latency":
            self.lat.append((ts, time.time()))
        if self.count >= self.total and self.mode != "scale":
            if self.mode == "drain":
                out: dict[str, Any] = {"seconds": time.perf_counter() - self.first}
            else:
                out = {"starts": self.lat}
            print(json.dumps(out), flush=True)
            os._exit(0)


async def worker_conveyor(url: str, mode: str, total: int) -> None:
    import conveyor

    backend = conveyor.open(url)
    counter = Counter(mode, total)

    async def handler(args: Any) -> None:
        counter.hit(args)

    concurrency = 1 if mode == "latency" else CONCURRENCY
    worker = conveyor.Worker(backend, handler, concurrency=concurrency)
    print("ready", flush=True)
    await worker.run()


async def worker_procrastinate(url: str, mode: str, total: int) -> None:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    counter = Counter(mode, total)

    @app.task(name="noop", queue="bench")
    async def noop(ts: float) -> None:
        counter.hit(ts)

    async with app.open_async():
        print("ready", flush=True)
        await app.run_worker_async(queues=["bench"], concurrency=CONCURRENCY, wait=True)


async def worker_pgqueuer(url: str, mode: str, total: int) -> None:
    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(url)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    counter = Counter(mode, total)

    @qm.entrypoint("noop")
    async def noop(job: Any) -> None:
        counter.hit(float(job.payload))

    print("ready", flush=True)
    await qm.run(batch_size=CONCURRENCY // 2, max_concurrent_tasks=CONCURRENCY * 2)


WORKERS = {
    "conveyor": worker_conveyor,
    "procrastinate": worker_procrastinate,
    "pgqueuer": worker_pgqueuer,
}


def start_worker(system: str, url: str, mode: str, total: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", system, url, mode, str(total)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{system} worker did not start: {line!r}")
    return proc


def result_of(proc: subprocess.Popen[str], timeout: float = 600) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker ended without a result (exit {proc.returncode})")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# --- the systems' pushers ------------------------------------------------------------------


class System:
    """One system's database, its pushes and its worker."""

    name = ""

    def __init__(self, db: str) -> None:
        self.db = db
        self.url = db_url(db)

    async def open(self) -> None: ...

    async def push(self, value: float) -> None: ...

    async def push_many(self, n: int) -> None:
        for i in range(n):
            await self.push(float(i))

    async def close(self) -> None: ...


class Conveyor(System):
    name = "conveyor"

    async def open(self) -> None:
        import conveyor

        self.backend = conveyor.open(self.url)
        await self.backend.migrate(apply=True)

    async def push(self, value: float) -> None:
        await self.backend.push(value)

    async def push_many(self, n: int) -> None:
        await self.backend.push_many([time.time()] * n)

    async def close(self) -> None:
        await self.backend.aclose()


class Procrastinate(System):
    name = "procrastinate"

    async def open(self) -> None:
        import procrastinate

        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self.url))

        @self.app.task(name="noop", queue="bench")
        async def noop(ts: float) -> None:
            pass

        self.task = noop
        await self.app.open_async()
        await self.app.schema_manager.apply_schema_async()

    async def push(self, value: float) -> None:
        await self.task.defer_async(ts=value)

    async def push_many(self, n: int) -> None:
        await self.task.batch_defer_async(*({"ts": time.time()} for _ in range(n)))

    async def close(self) -> None:
        await self.app.close_async()


class PgQueuer(System):
    name = "pgqueuer"

    async def open(self) -> None:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        self.conn = await asyncpg.connect(self.url)
        self.queries = Queries(AsyncpgDriver(self.conn))
        await self.queries.install()

    async def push(self, value: float) -> None:
        await self.queries.enqueue("noop", str(value).encode())

    async def push_many(self, n: int) -> None:
        now = str(time.time()).encode()
        await self.queries.enqueue(["noop"] * n, [now] * n, [0] * n)

    async def close(self) -> None:
        await self.conn.close()


# --- measurements ----------------------------------------------------------------------


async def drain(system: System, n: int) -> float:
    """Tasks per second for one worker process draining ``n`` tasks."""
    await system.push_many(n)
    proc = await asyncio.to_thread(start_worker, system.name, system.url, "drain", n)
    return n / float((await asyncio.to_thread(result_of, proc))["seconds"])


async def drain_processes(system: Conveyor, n: int, processes: int) -> float:
    """Tasks per second for ``processes`` conveyor workers sharing one queue of ``n`` tasks:
    from the first task's start in any of them to the moment all ``n`` are Done (read
    every 20 ms, the same for 1 and 2 processes)."""
    import psycopg

    procs = [
        await asyncio.to_thread(start_worker, system.name, system.url, "scale", n)
        for _ in range(processes)
    ]
    await asyncio.sleep(1.0)  # all of them idle, listening
    await system.push_many(n)  # one commit: every worker is woken by the same notification
    conn = await psycopg.AsyncConnection.connect(system.url, autocommit=True)
    try:
        while True:
            cur = await conn.execute("SELECT count(*) FROM conveyor.tasks WHERE status = 'Done'")
            row = await cur.fetchone()
            if row and row[0] >= n:
                end = time.time()
                break
            await asyncio.sleep(0.02)
        await conn.execute("TRUNCATE conveyor.tasks")
    finally:
        await conn.close()
    firsts = []
    for proc in procs:
        proc.kill()
        out, _ = await asyncio.to_thread(proc.communicate)
        firsts += [json.loads(line)["first"] for line in out.splitlines() if '"first"' in line]
    return n / (end - min(firsts))


async def latency(system: System) -> tuple[float, float]:
    """p50 seconds from push called, and from push returned (committed), to handler start."""
    import psycopg

    # What earlier runs left (tasks a worker claimed ahead and never acked before it
    # exited) must not reach this worker.
    async with await psycopg.AsyncConnection.connect(system.url.split("?")[0]) as conn:
        await conn.execute("TRUNCATE conveyor.tasks")
    proc = await asyncio.to_thread(start_worker, system.name, system.url, "latency", LATENCY_TASKS)
    await asyncio.sleep(1.0)  # let it go idle
    called, returned = {}, {}
    for i in range(LATENCY_TASKS):
        called[i] = time.time()
        await system.push(float(i))
        returned[i] = time.time()
        await asyncio.sleep(LATENCY_GAP)
    starts = (await asyncio.to_thread(result_of, proc))["starts"]
    by_call = [start - called[int(i)] for i, start in starts]
    by_return = [start - returned[int(i)] for i, start in starts]
    return statistics.median(by_call), statistics.median(by_return)


async def timed(call: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def enqueue_vs_insert(system: Conveyor, n: int, rounds: int) -> tuple[float, float, float]:
    """Median seconds per push for conveyor and for a bare INSERT of the same row."""
    import psycopg

    from conveyor import TaskId
    from conveyor.clock import at

    conn = await psycopg.AsyncConnection.connect(system.url, autocommit=True)
    insert = (
        "INSERT INTO conveyor.tasks (id, queue, status, attempt, max_attempts, run_at,"
        " priority, args, meta, name) VALUES (%s, %s, 'Pending', 0, %s, %s, %s, %s, %s, %s)"
    )

    async def bare() -> None:
        for _ in range(n):
            await conn.execute(
                insert, (TaskId.new(), "default", 5, at(time.time()), 0, b"1.0", None, None)
            )

    async def ours() -> None:
        for _ in range(n):
            await system.backend.push(1.0)

    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(await timed(ours) / n)
        theirs.append(await timed(bare) / n)
    await conn.close()
    m, t = statistics.median(mine), statistics.median(theirs)
    return m, t, t / m


async def fill_for_claims(url: str, schema: str, stored: int) -> Any:
    """A backend on ``url`` and ``schema`` whose table holds ``stored`` tasks, all but
    1,000 of them Done."""
    import psycopg

    import conveyor

    backend = conveyor.open(url + ("&" if "?" in url else "?") + f"schema={schema}")
    await backend.migrate(apply=True)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'TRUNCATE "{schema}".tasks')
        done = stored - 1000
        for start in range(0, done, 50_000):
            await backend.push_many([0] * min(50_000, done - start))
        await conn.execute(f"UPDATE \"{schema}\".tasks SET status = 'Done'")
        await conn.execute(f'VACUUM ANALYZE "{schema}".tasks')
        await backend.push_many([0] * 1000)
    return backend


async def claim_costs(system: Conveyor, samples: int, rounds: int) -> tuple[float, float]:
    """Median seconds for one claim (and its commit) with 2,000 and with 1,000,000 tasks
    stored (all but 1,000 Done): both tables built first, in two schemas, then a
    CHECKPOINT, so neither size is timed while the server still writes the other's
    fill; then the samples alternate between the two, ``samples`` per round."""
    import psycopg

    from conveyor import WorkerInfo
    from conveyor.outcome import Done

    small = await fill_for_claims(system.url, "conveyor", 1_000 + 1_000)
    large = await fill_for_claims(system.url, "claim_1m", 1_000_000)
    async with await psycopg.AsyncConnection.connect(system.url, autocommit=True) as conn:
        await conn.execute("CHECKPOINT")
    me = WorkerInfo("bench-claim", small.queue)
    times: dict[int, list[float]] = {id(small): [], id(large): []}
    try:
        for _ in range(rounds):
            for backend in (small, large):
                for _ in range(samples):
                    stream = backend.poll(me)
                    start = time.perf_counter()
                    task = await anext(stream)
                    times[id(backend)].append(time.perf_counter() - start)
                    await stream.aclose()
                    assert task is not None
                    await backend.hooks.ack(task, Done())
    finally:
        await small.aclose()
        await large.aclose()
    return statistics.median(times[id(small)]), statistics.median(times[id(large)])


async def rest(conv: Conveyor, db: str, n: int, rounds: int) -> dict[str, Any]:
    """Latency, scale-out and claim cost: conveyor alone."""
    figures: dict[str, Any] = {}
    fast = Conveyor(db)
    fast.url = conv.url + "?durable_claims=false"
    fast.backend = conv.backend
    lat, lat_fast, commit = [], [], []
    for _ in range(rounds):
        lat.append(await latency(conv))
        lat_fast.append(await latency(fast))
        # Timed on another queue: the latency worker must not see it.
        commit.append(await timed(lambda: conv.backend.push(0.0, queue="timing")))

    def ms(pairs: list[tuple[float, float]], k: int) -> float:
        return statistics.median(p[k] for p in pairs) * 1000

    figures["latency_p50_ms_from_push_call"] = ms(lat, 0)
    figures["latency_p50_ms_from_commit"] = ms(lat, 1)
    figures["latency_p50_ms_from_commit_claims_not_flushed"] = ms(lat_fast, 1)
    figures["one_push_ms"] = statistics.median(commit) * 1000
    print(f"latency p50: {ms(lat, 0):.2f} ms from the push call, {ms(lat, 1):.2f} ms from"
          f" its commit ({ms(lat_fast, 1):.2f} ms with durable_claims=false);"
          f" one push takes {figures['one_push_ms']:.2f} ms", flush=True)  # fmt: skip

    scale1, scale2 = [], []
    for _ in range(rounds):
        scale1.append(await drain_processes(conv, n, 1))
        scale2.append(await drain_processes(conv, n, 2))
    figures["scale_out_2_vs_1"] = statistics.median(scale2) / statistics.median(scale1)
    print(f"scale-out: {figures['scale_out_2_vs_1']:.2f}x", flush=True)

    small, large = await claim_costs(conv, 100, rounds)
    figures["claim_s"] = {"1k": small, "1M": large}
    figures["claim_1M_vs_1k"] = large / small
    print(f"claim at 1M vs 1k: {large / small:.2f}x", flush=True)
    return figures


async def main(n: int, rounds: int, only: str | None = None) -> None:
    import psycopg

    tag = uuid.uuid4().hex[:6]
    dbs = {name: f"bench_{name}_{tag}" for name in ("conveyor", "procrastinate", "pgqueuer")}
    admin = await psycopg.AsyncConnection.connect(BASE_URL, autocommit=True)
    for db in dbs.values():
        await admin.execute(f'CREATE DATABASE "{db}"')
    systems: dict[str, System] = {
        "conveyor": Conveyor(dbs["conveyor"]),
        "procrastinate": Procrastinate(dbs["procrastinate"]),
        "pgqueuer": PgQueuer(dbs["pgqueuer"]),
    }
    figures: dict[str, Any] = {"n": n, "rounds": rounds}
    try:
        for system in systems.values():
            await system.open()
        conv = systems["conveyor"]
        assert isinstance(conv, Conveyor)

        if only == "claim":
            small, large = await claim_costs(conv, 100, rounds)
            print(f"claim at 1M vs 1k: {large / small:.2f}x (1k {small * 1e3:.3f} ms,"
                  f" 1M {large * 1e3:.3f} ms)", flush=True)  # fmt: skip
            return
        if only == "rest":
            figures.update(await rest(conv, dbs["conveyor"], n, rounds))
            return
        rates: dict[str, list[float]] = {name: [] for name in systems}
        peers = [p for p in systems if only != "drain-fast" or p != "procrastinate"]
        for _ in range(rounds):  # interleaved: each round runs every system once
            for name in peers:
                system = systems[name]
                size = n // 5 if name == "procrastinate" else n
                rates[name].append(await drain(system, size))
        rate = {name: statistics.median(r) for name, r in rates.items() if r}
        figures["drain_per_s"] = rate
        if "procrastinate" in rate:
            figures["drain_vs_procrastinate"] = rate["conveyor"] / rate["procrastinate"]
        figures["drain_vs_pgqueuer"] = rate["conveyor"] / rate["pgqueuer"]
        print(f"drain: {rate} = {figures['drain_vs_pgqueuer']:.2f}x pgqueuer", flush=True)
        if only is not None:
            return

        mine, bare, ratio = await enqueue_vs_insert(conv, n // 5, rounds)
        figures["enqueue_s"] = {"conveyor": mine, "bare_insert": bare}
        figures["enqueue_vs_bare_insert"] = ratio
        print(f"enqueue one by one: {ratio:.2f}x a bare INSERT", flush=True)

        bulk = []
        for _ in range(rounds):
            seconds = await timed(lambda: conv.push_many(50_000))
            bulk.append(50_000 / seconds)
        figures["bulk_push_per_s"] = statistics.median(bulk)
        print(f"bulk push: {figures['bulk_push_per_s']:,.0f}/s", flush=True)
        async with await psycopg.AsyncConnection.connect(conv.url, autocommit=True) as conn:
            await conn.execute("TRUNCATE conveyor.tasks")

        figures.update(await rest(conv, dbs["conveyor"], n, rounds))
    finally:
        for system in systems.values():
            try:
                await system.close()
            except Exception as exc:
                print(f"closing {system.name}: {exc}", file=sys.stderr)
        for db in dbs.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    out = Path(__file__).with_name("results") / "postgres.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, system, url, mode, total = sys.argv
        asyncio.run(WORKERS[system](url, mode, int(total)))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--n", type=int, default=5000)
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument(
            "--only", choices=["drain", "drain-fast", "rest", "claim"], default=None
        )
        args = parser.parse_args()
        asyncio.run(main(args.n, args.rounds, args.only))

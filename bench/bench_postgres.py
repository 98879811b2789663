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
  the same table, one by one on a connection of its own, autocommit; the two
  alternate push by push in one continuous stream (with a second bare connection
  as the method's noise), summed over rounds of 100 pushes (at least 30 rounds);
  client CPU per push (``time.process_time``) beside the time;
- bulk push: push_many of 50,000 tasks (COPY), in tasks per second;
- latency: enqueue to handler start with an idle worker, p50 of tasks pushed one
  at a time;
- claim cost with 1,000,000 stored tasks (999,000 of them Done) against 1,000: both
  tables built first (two schemas), a CHECKPOINT, then samples alternating between them;
- scale-out: the same drain with 2 worker processes against 1 (issue 16), beside a
  bare SKIP LOCKED worker (claim 100, ack them in one UPDATE, nothing else) with 1
  and 2 processes: the ceiling this machine gives any client. Each run also reads
  the CPU the workers and their server processes spent per task, so the split
  between client and server on the 2 cores is printed with the rates.

Figures go to bench/results/postgres.json through ``report.Report`` (``bench/plot.py``
charts it); the ratios are printed as they are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from report import Report

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
            self.first_wall = time.time()
            self.first_cpu = time.process_time()
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

    def on_term(self) -> None:
        """Scale mode: the harness stops every worker once all tasks are Done."""
        first = self.first_wall if self.count else None
        cpu = time.process_time() - self.first_cpu if self.count else 0.0
        out = {"first": first, "count": self.count, "cpu": cpu}
        print(json.dumps(out), flush=True)
        os._exit(0)

    def listen_for_term(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.on_term)


async def worker_conveyor(url: str, mode: str, total: int) -> None:
    import conveyor

    backend = conveyor.open(url)
    counter = Counter(mode, total)

    async def handler(args: Any) -> None:
        counter.hit(args)

    concurrency = 1 if mode == "latency" else CONCURRENCY
    worker = conveyor.Worker(backend, handler, concurrency=concurrency, handle_signals=False)
    counter.listen_for_term()
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


BARE_BATCH = 100


async def worker_bare(url: str, mode: str, total: int) -> None:
    """The least a SKIP LOCKED client does per task: claim a batch in one statement,
    mark it Done in one more; an empty claim sleeps 5 ms (scale mode only)."""
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    counter = Counter(mode, total)
    claim = (
        "WITH c AS (SELECT id FROM conveyor.tasks WHERE queue = 'default'"
        " AND status IN ('Pending', 'Failed') ORDER BY priority DESC, run_at, id"
        " LIMIT %s FOR UPDATE SKIP LOCKED)"
        " UPDATE conveyor.tasks t SET status = 'Running', attempt = t.attempt + 1"
        " FROM c WHERE t.id = c.id RETURNING t.id, t.args"
    )
    done = "UPDATE conveyor.tasks SET status = 'Done' WHERE id = ANY(%s)"
    counter.listen_for_term()
    print("ready", flush=True)
    while True:
        cur = await conn.execute(claim, (BARE_BATCH,))
        rows = await cur.fetchall()
        if not rows:
            await asyncio.sleep(0.005)
            continue
        for row in rows:
            json.loads(row[1])
            counter.hit(0.0)
        await conn.execute(done, ([row[0] for row in rows],))


WORKERS = {
    "bare": worker_bare,
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


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _server_pids(conn: Any, db: str) -> list[int]:
    cur = await conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (db,)
    )
    return [row[0] for row in await cur.fetchall()]


async def drain_processes(system: Conveyor, n: int, processes: int, kind: str) -> dict[str, float]:
    """``processes`` workers of ``kind`` (conveyor or bare) sharing one queue of ``n`` tasks.

    Rate: from the first task's start in any of them to the moment all ``n`` are Done
    (read every 20 ms, the same for every run). Also the CPU per task of the workers
    and of the server processes serving this database, over the same span.
    """
    import psycopg

    conn = await psycopg.AsyncConnection.connect(system.url, autocommit=True)
    procs = [
        await asyncio.to_thread(start_worker, kind, system.url, "scale", n)
        for _ in range(processes)
    ]
    try:
        await asyncio.sleep(1.0)  # all of them idle, listening
        await system.push_many(n)  # one commit: every worker is woken by the same notification
        # Read after the COPY: its server time is the push's, not the drain's.
        before = {pid: _cpu_seconds(pid) for pid in await _server_pids(conn, system.db)}
        while True:
            cur = await conn.execute("SELECT count(*) FROM conveyor.tasks WHERE status = 'Done'")
            row = await cur.fetchone()
            if row and row[0] >= n:
                end = time.time()
                break
            await asyncio.sleep(0.02)
        server = sum(
            _cpu_seconds(pid) - before.get(pid, 0.0) for pid in await _server_pids(conn, system.db)
        )
    finally:
        outs = []
        for proc in procs:
            proc.terminate()
            outs.append(await asyncio.to_thread(result_of, proc))
        # Only once the workers are gone: rows deleted under them made each one log
        # every ack its exit still sent as refused (the task no longer exists).
        await conn.execute("TRUNCATE conveyor.tasks")
        await conn.close()
    first = min(o["first"] for o in outs if o["first"] is not None)
    return {
        "rate": n / (end - first),
        "worker_cpu_us": sum(o["cpu"] for o in outs) / n * 1e6,
        "server_cpu_us": server / n * 1e6,
        "fewest": float(min(o["count"] for o in outs)),
    }


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


async def enqueue_vs_insert(system: Conveyor, n: int, rounds: int) -> dict[str, float]:
    """Seconds and client CPU per push: conveyor's push, and a bare INSERT of the same row.

    One continuous stream in which the two alternate push by push (and which goes
    first swaps every pair), so both meet the same load at every instant, and
    conveyor's notifications are those of any steady stream (one per
    ``notify_window``, none forced by a pause) rather than a leading edge and a
    flush per round. Each side's time is summed over rounds of ``n`` pushes (so the
    pushes that notify count in full); the figures are medians over rounds. The bare
    INSERT runs on a connection of its own; a second bare connection, in the same
    rotation, is the method's own noise (its ratio to the first should be 1.00).
    """
    import psycopg

    from conveyor import TaskId
    from conveyor.clock import at

    insert = (
        "INSERT INTO conveyor.tasks (id, queue, status, attempt, max_attempts, run_at,"
        " priority, args, meta, name) VALUES (%s, %s, 'Pending', 0, %s, %s, %s, %s, %s, %s)"
    )
    conns = [await psycopg.AsyncConnection.connect(system.url, autocommit=True) for _ in "ab"]

    def bare(conn: Any) -> Callable[[], Awaitable[Any]]:
        def push() -> Awaitable[Any]:
            row = (TaskId.new(), "default", 5, at(time.time()), 0, b"1.0", None, None)
            return conn.execute(insert, row)

        return push

    sides = {"conveyor": lambda: system.backend.push(1.0), "bare": bare(conns[0]),
             "bare again": bare(conns[1])}  # fmt: skip
    names = list(sides)
    try:
        for _ in range(50):  # warm: connections made, statements prepared
            for name in names:
                await sides[name]()
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        clock, cpu = time.perf_counter, time.process_time
        for r in range(rounds):
            spent = {name: [0.0, 0.0] for name in names}
            for i in range(n):
                k = (r * n + i) % len(names)
                for name in names[k:] + names[:k]:
                    call, out = sides[name], spent[name]
                    w, c = clock(), cpu()
                    await call()
                    out[1] += cpu() - c
                    out[0] += clock() - w
            for name in names:
                per_round[name].append((spent[name][0] / n, spent[name][1] / n))
    finally:
        for conn in conns:
            await conn.close()
    med = {f"{name} {what}": statistics.median(x[j] for x in per_round[name])
           for name in names for j, what in enumerate(("s", "cpu"))}  # fmt: skip
    med["ratio"] = statistics.median(
        b[0] / m[0] for m, b in zip(per_round["conveyor"], per_round["bare"], strict=True)
    )
    med["noise"] = statistics.median(
        b[0] / a[0] for a, b in zip(per_round["bare"], per_round["bare again"], strict=True)
    )
    return med


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


async def latency_part(conv: Conveyor, db: str, rounds: int, report: Report) -> None:
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

    one = statistics.median(commit) * 1000
    figure = "latency p50 (push call to handler start)"
    report.add(figure, "conveyor", ms(lat, 0), unit="ms", higher_is_better=False)
    report.add(figure, "conveyor durable_claims=false", ms(lat_fast, 0), unit="ms",
               higher_is_better=False)  # fmt: skip
    figure = "latency p50 (commit to handler start)"
    report.add(figure, "conveyor", ms(lat, 1), unit="ms", higher_is_better=False)
    report.add(figure, "conveyor durable_claims=false", ms(lat_fast, 1), unit="ms",
               higher_is_better=False)  # fmt: skip
    print(f"latency p50: {ms(lat, 0):.2f} ms from the push call, {ms(lat, 1):.2f} ms from"
          f" its commit ({ms(lat_fast, 1):.2f} ms with durable_claims=false);"
          f" one push takes {one:.2f} ms", flush=True)  # fmt: skip


async def scale_part(conv: Conveyor, n: int, rounds: int, report: Report) -> None:
    """1 and 2 worker processes, conveyor's and bare ones, interleaved; medians."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for i in range(rounds):
        order = [(kind, k) for kind in ("conveyor", "bare") for k in (1, 2)]
        for kind, k in order if i % 2 == 0 else order[::-1]:
            runs.setdefault((kind, k), []).append(await drain_processes(conv, n, k, kind))
        each = ", ".join(f"{kind} {k}: {v[-1]['rate']:,.0f}/s" for (kind, k), v in runs.items())
        print(f"scale-out round {i + 1}: {each} (load {os.getloadavg()[0]:.1f})", flush=True)
    med = {key: {f: statistics.median(r[f] for r in v) for f in v[0]} for key, v in runs.items()}
    for (kind, k), m in med.items():
        system = "conveyor" if kind == "conveyor" else "bare SKIP LOCKED"
        report.add(f"scale-out drain, {k} process{'es' if k > 1 else ''}", system, m["rate"])
        print(f"{system} {k} process(es): {m['rate']:,.0f}/s; per task: workers' CPU"
              f" {m['worker_cpu_us']:.0f} us, server CPU {m['server_cpu_us']:.0f} us"
              f" (fewest tasks one process ran: {m['fewest']:.0f})", flush=True)  # fmt: skip
    for kind in ("conveyor", "bare"):
        speedup = med[(kind, 2)]["rate"] / med[(kind, 1)]["rate"]
        system = "conveyor" if kind == "conveyor" else "bare SKIP LOCKED"
        report.add("scale-out, 2 processes / 1", system, speedup, unit="x")
        one = med[(kind, 1)]
        cpu = one["worker_cpu_us"] + one["server_cpu_us"]
        print(f"scale-out {system}: 2 processes / 1 = {speedup:.2f}x; with 2 cores and"
              f" {cpu:.0f} us of CPU per task, at most {2e6 / cpu:,.0f}/s ="
              f" {2e6 / cpu / one['rate']:.2f}x its 1-process rate", flush=True)  # fmt: skip


async def claim_part(conv: Conveyor, rounds: int, report: Report) -> None:
    small, large = await claim_costs(conv, 100, rounds)
    report.add("claim (and its commit)", "conveyor, 1k tasks stored", small * 1e3, unit="ms",
               higher_is_better=False)  # fmt: skip
    report.add("claim (and its commit)", "conveyor, 1M tasks stored", large * 1e3, unit="ms",
               higher_is_better=False)  # fmt: skip
    print(f"claim at 1M vs 1k: {large / small:.2f}x (1k {small * 1e3:.3f} ms,"
          f" 1M {large * 1e3:.3f} ms)", flush=True)  # fmt: skip


async def drain_part(systems: dict[str, System], n: int, rounds: int, skip: set[str],
                     report: Report) -> None:  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in systems if name not in skip}
    for _ in range(rounds):  # interleaved: each round runs every system once
        for name in rates:
            size = n // 5 if name == "procrastinate" else n
            rates[name].append(await drain(systems[name], size))
    rate = {name: statistics.median(r) for name, r in rates.items()}
    for name, value in rate.items():
        report.add("drain, 1 worker process", name, value)
    peers = ", ".join(f"{rate['conveyor'] / v:.2f}x {name}" for name, v in rate.items()
                      if name != "conveyor")  # fmt: skip
    print(f"drain: { {k: round(v) for k, v in rate.items()} }: conveyor = {peers}", flush=True)


async def enqueue_part(conv: Conveyor, n: int, rounds: int, report: Report) -> None:
    f = await enqueue_vs_insert(conv, n, rounds)
    mine, bare = f["conveyor s"], f["bare s"]
    figure = "enqueue 1-by-1 (time per push)"
    report.add(figure, "conveyor", mine * 1e6, unit="us", higher_is_better=False)
    report.add(figure, "bare psycopg INSERT", bare * 1e6, unit="us", higher_is_better=False)
    print(f"enqueue one by one: {f['ratio']:.2f}x a bare INSERT ({mine * 1e6:.0f} us vs"
          f" {bare * 1e6:.0f} us per push; client CPU {f['conveyor cpu'] * 1e6:.0f} us vs"
          f" {f['bare cpu'] * 1e6:.0f} us; median of {rounds} rounds of {n} interleaved"
          f" pushes; a second bare connection: {f['noise']:.2f}x the first;"
          f" load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip


async def bulk_part(systems: dict[str, System], rounds: int, report: Report) -> None:
    import psycopg

    bulk: dict[str, list[float]] = {"conveyor": [], "pgqueuer": []}
    for _ in range(rounds):
        for name in bulk:
            seconds = await timed(lambda: systems[name].push_many(50_000))  # noqa: B023
            bulk[name].append(50_000 / seconds)
    for name, values in bulk.items():
        report.add("bulk push of 50,000", name, statistics.median(values))
    ratio = statistics.median(bulk["conveyor"]) / statistics.median(bulk["pgqueuer"])
    print(f"bulk push: {statistics.median(bulk['conveyor']):,.0f}/s = {ratio:.2f}x pgqueuer",
          flush=True)  # fmt: skip
    async with await psycopg.AsyncConnection.connect(systems["conveyor"].url) as conn:
        await conn.execute("TRUNCATE conveyor.tasks")
        await conn.commit()


PARTS = ("drain", "enqueue", "bulk", "latency", "scale", "claim")


async def main(n: int, rounds: int, parts: set[str], skip: set[str]) -> None:
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
    report = Report("postgres")
    print(f"PostgreSQL {BASE_URL}; N={n}; {rounds} rounds; load average"
          f" {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} cores", flush=True)  # fmt: skip
    try:
        for system in systems.values():
            await system.open()
        conv = systems["conveyor"]
        assert isinstance(conv, Conveyor)
        if "drain" in parts:
            await drain_part(systems, n, rounds, skip, report)
        if "enqueue" in parts:
            await enqueue_part(conv, 100, max(30, 10 * rounds), report)
        if "bulk" in parts:
            await bulk_part(systems, rounds, report)
        if "latency" in parts:
            await latency_part(conv, dbs["conveyor"], rounds, report)
        if "scale" in parts:
            await scale_part(conv, n, rounds, report)
        if "claim" in parts:
            await claim_part(conv, rounds, report)
    finally:
        for system in systems.values():
            try:
                await system.close()
            except Exception as exc:
                print(f"closing {system.name}: {exc}", file=sys.stderr)
        for db in dbs.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    print(f"load average {os.getloadavg()[0]:.2f} at end", flush=True)
    print(f"figures written to {report.save()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, system, url, mode, total = sys.argv
        asyncio.run(WORKERS[system](url, mode, int(total)))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--n", type=int, default=5000)
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts")
        parser.add_argument("--skip", default="", help="systems left out of the drain")
        args = parser.parse_args()
        parts = set(args.parts.split(","))
        if unknown := parts - set(PARTS):
            parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
        asyncio.run(main(args.n, args.rounds, parts, set(filter(None, args.skip.split(",")))))

"""Client instructions per call over conveyor-redis's pipelined connection, by callgrind.

    .venv/bin/python bench/callgrind_redis.py [--rounds 3] [--protocol NAME=FILE ...]

Counts user-space instructions (callgrind's Ir), which the machine's load does not
change, of one push script call (``pipeline.script("push", ...)``, the arguments
built beforehand) and of one PING over the pipeline, each awaited before the next
(``--ops`` adds a push through the facade, ``backend.push``, and redis-py's LPUSH).
A figure is (Ir of a run making N2 calls - Ir of one making N1) / (N2 - N1), so
start-up, imports and the connection's handshake cancel; the median of ``--rounds``
interleaved rounds is printed. ``--protocol NAME=FILE`` also measures the
``ReplyProtocol`` class of another module file (an earlier reply reader, say) put
in the pipeline's place, in the same rounds; ratios are against the first one
named (``current``: the installed conveyor_redis's own).

``--server`` counts the server's side instead: a redis-server of its own run under
callgrind (``--hz 1``, so its timer adds next to nothing), the counters zeroed
before and dumped after each batch of calls, the same N2 - N1 difference per call:
redis-py's LPUSH, a conveyor push (``backend.push``), a claim of 10 tasks and an
ack (``Done``), and per task one tenth of a claim plus an ack; then the same with
10 acks made at once (per ack), as a worker's lanes make them.

Needs valgrind and a Redis server (``CONVEYOR_REDIS_URL``, default
redis://127.0.0.1:6379/0); its keys go under a fresh prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

N1, N2 = 200, 1200
WARM = 50
OPS = ("push", "PING", "facade push", "redis-py LPUSH")


def _child(protocol_file: str, counts: dict[str, int], url: str) -> None:
    import conveyor_redis.pipelining as pipelining
    import redis.asyncio as aioredis
    from conveyor_redis.records import meta_bytes, micros, priority_key

    import conveyor

    if protocol_file != "current":
        spec = importlib.util.spec_from_file_location("_protocol", protocol_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        pipelining.ReplyProtocol = module.ReplyProtocol  # type: ignore[attr-defined]

    async def main() -> None:
        backend = conveyor.open(url)
        plugin: Any = backend.plugin
        pipeline, base = plugin.pipeline, plugin.keys.base
        queue_key = plugin.keys.queue(backend.queue)
        run_at = micros(datetime.now(UTC))
        # Every run builds the arguments of the most pushes any run makes, so that
        # building them cancels out of the difference.
        flats = [
            [
                conveyor.TaskId.new(), backend.queue, queue_key, run_at,
                priority_key(0), 3, b"payload-%d" % i, meta_bytes({}), "",
            ]
            for i in range(N2 + WARM)
        ]  # fmt: skip
        client = aioredis.Redis.from_url(url.split("?")[0])
        listed = f"{base}lpush"
        for flat in flats[:WARM]:
            await pipeline.execute("PING")
            await pipeline.script("push", base, run_at, "0", *flat)
            await backend.push({"n": 1})
            await client.lpush(listed, b"payload")
        for _ in range(counts["PING"]):
            await pipeline.execute("PING")
        for flat in flats[WARM : WARM + counts["push"]]:
            await pipeline.script("push", base, run_at, "0", *flat)
        for _ in range(counts["facade push"]):
            await backend.push({"n": 1})
        for _ in range(counts["redis-py LPUSH"]):
            await client.lpush(listed, b"payload")
        await client.aclose()
        await backend.aclose()

    asyncio.run(main())


def _instructions(protocol_file: str, counts: dict[str, int], url: str, out: str) -> int:
    subprocess.run(
        [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--child", protocol_file, json.dumps(counts), url,
        ],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with open(out) as f:
        totals = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    os.unlink(out)
    assert totals is not None, f"no instruction total in {out}"
    return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocol", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--ops", default="push,PING", help=f"comma-separated, of: {', '.join(OPS)}")
    parser.add_argument("--server", action="store_true", help="count redis-server's side")
    args = parser.parse_args()
    if args.server:
        server_main(args.rounds)
        return
    ops = args.ops.split(",")
    if not set(ops) <= set(OPS):
        parser.error(f"--ops: {args.ops!r} names none of {', '.join(OPS)}")
    url = os.environ.get("CONVEYOR_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"cgbench-{uuid.uuid4().hex[:8]}"
    url += ("&" if "?" in url else "?") + f"prefix={prefix}"
    protocols = {"current": "current"}
    for item in args.protocol:
        name, _, path = item.partition("=")
        protocols[name] = os.path.abspath(path)
    figures: dict[tuple[str, str], list[float]] = {}
    out = os.path.join(tempfile.mkdtemp(prefix="callgrind-"), "out")
    print(f"load: {os.getloadavg()[0]:.1f}", flush=True)
    for round_ in range(args.rounds):
        names = list(protocols)
        if round_ % 2:
            names.reverse()
        for name in names:
            path = protocols[name]
            counts = dict.fromkeys(OPS, 0) | dict.fromkeys(ops, N1)
            base = _instructions(path, counts, url, out)
            for op in ops:
                total = _instructions(path, counts | {op: N2}, url, out)
                per_call = (total - base) / (N2 - N1)
                figures.setdefault((name, op), []).append(per_call)
                print(f"round {round_ + 1} {name:>10} {op}: {per_call / 1000:.1f}k", flush=True)
    _cleanup(url, prefix)
    first = next(iter(protocols))
    print(f"\nmedian of {args.rounds} rounds (load now {os.getloadavg()[0]:.1f}):")
    for op in ops:
        baseline = statistics.median(figures[first, op])
        for name in protocols:
            value = statistics.median(figures[name, op])
            print(f"  {op:>14} {name:>10}: {value / 1000:.1f}k instr/call, {value / baseline:.3f}x")


SERVER_N1, SERVER_N2 = 100, 400
"""Calls per batch on the server; claims are of ``CLAIMED`` tasks each."""
CLAIMED = 10


class _CountedServer:
    """A redis-server under callgrind, whose counters are zeroed and dumped on demand."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="callgrind-server-")
        self.out = os.path.join(self.folder, "cg.out")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}",
             "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--hz", "1", "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.dumps = 0
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _control(self, flag: str) -> None:
        subprocess.run(
            ["callgrind_control", flag, str(self.proc.pid)], check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def zero(self) -> None:
        self._control("-z")

    def dump(self) -> int:
        self._control("-d")
        self.dumps += 1
        path = f"{self.out}.{self.dumps}"
        with open(path) as f:
            totals = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
        os.unlink(path)
        assert totals is not None, f"no instruction total in {path}"
        return int(totals.group(1))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


async def _server_round(server: _CountedServer) -> dict[str, float]:
    from collections import deque

    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    import conveyor
    from conveyor import Done, WorkerInfo

    client = aioredis.Redis.from_url(server.url)
    for _ in range(100):
        try:
            await client.ping()
            break
        except RedisConnectionError:
            await asyncio.sleep(0.2)
    prefix = f"cgserver-{uuid.uuid4().hex[:6]}"
    backend = conveyor.open(f"{server.url}?prefix={prefix}")
    plugin: Any = backend.plugin
    worker = WorkerInfo(name="cg-worker", queue=backend.queue, concurrency=CLAIMED)
    for i in range(20):  # warm: script loaded, connections open
        await backend.push({"n": i})
        await client.lpush(f"{prefix}:lpush", b"payload")
    held: deque[Any] = deque()
    await plugin._claim(worker, held)
    for task in held:
        await plugin.ack(task, Done())

    async def counted(n: int, batch: Callable[[int], Awaitable[Any]]) -> int:
        server.zero()
        await batch(n)
        return server.dump()

    async def lpushes(n: int) -> None:
        for _ in range(n):
            await client.lpush(f"{prefix}:lpush", b"payload")

    async def pushes(n: int) -> None:
        for i in range(n):
            await backend.push({"n": i})

    claimed: deque[Any] = deque()

    async def claims(n: int) -> None:
        for _ in range(n):
            await plugin._claim(worker, claimed)
            plugin._outstanding.clear()

    async def acks(n: int) -> None:
        for _ in range(n):
            await plugin.ack(claimed.popleft(), Done())

    figures: dict[str, float] = {}
    for name, batch in (("LPUSH", lpushes), ("push", pushes)):
        low, high = await counted(SERVER_N1, batch), await counted(SERVER_N2, batch)
        figures[name] = (high - low) / (SERVER_N2 - SERVER_N1)
    # Tasks for the claims (pushed above, and more now: a claim always finds 10).
    await pushes((SERVER_N1 + SERVER_N2) * CLAIMED)
    low, high = await counted(SERVER_N1, claims), await counted(SERVER_N2, claims)
    figures["claim of 10"] = (high - low) / (SERVER_N2 - SERVER_N1)
    low, high = await counted(SERVER_N1, acks), await counted(SERVER_N2, acks)
    figures["ack"] = (high - low) / (SERVER_N2 - SERVER_N1)
    figures["per task"] = figures["claim of 10"] / CLAIMED + figures["ack"]

    async def together(n: int) -> None:
        # A worker's lanes acking at once: the first goes out, the rest queue behind
        # it and go as one call (AutoPipeline.script_merged).
        for _ in range(n):
            group = [claimed.popleft() for _ in range(CLAIMED)]
            await asyncio.gather(*(plugin.ack(t, Done()) for t in group))

    await pushes((SERVER_N1 + SERVER_N2) * CLAIMED)
    await claims(SERVER_N1 + SERVER_N2)
    low, high = await counted(SERVER_N1, together), await counted(SERVER_N2, together)
    figures["ack, 10 at once"] = (high - low) / (SERVER_N2 - SERVER_N1) / CLAIMED
    figures["per task, acks at once"] = (
        figures["claim of 10"] / CLAIMED + figures["ack, 10 at once"]
    )
    await backend.aclose()
    await client.flushdb()
    await client.aclose()
    return figures


def server_main(rounds: int) -> None:
    server = _CountedServer()
    print(f"load: {os.getloadavg()[0]:.1f}", flush=True)
    figures: dict[str, list[float]] = {}
    try:
        for round_ in range(rounds):
            for name, value in asyncio.run(_server_round(server)).items():
                figures.setdefault(name, []).append(value)
                print(f"round {round_ + 1} server {name}: {value / 1000:.1f}k", flush=True)
    finally:
        server.stop()
    print(f"\nserver, median of {rounds} rounds (load now {os.getloadavg()[0]:.1f}):")
    for name, values in figures.items():
        print(f"  {name:>12}: {statistics.median(values) / 1000:.1f}k instr/call")


def _cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url.split("?")[0])
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
    else:
        main()

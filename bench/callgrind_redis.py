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
import statistics
import subprocess
import sys
import tempfile
import uuid
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
    args = parser.parse_args()
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

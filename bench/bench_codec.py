"""The default codec against the standard library's json on the same payloads.

``JsonCodec`` checks more than ``json`` does (size, depth, NaN, lone surrogates);
this prints what that costs, per payload kind, as round trips per second (encode
then decode) for both, measured in interleaved rounds of one run (best of each).
Run: ``python bench/bench_codec.py``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import Report

from conveyor import JsonCodec

PAYLOADS: dict[str, Any] = {
    "small ASCII": {"to": "ada@example.com", "subject": "Your order", "n": 42},
    "with emoji": {"to": "ada@example.com", "subject": "Thanks 😀 🎉", "tags": ["👍"] * 5},
    "10 KiB text": {"body": "lorem ipsum dolor sit amet " * 380, "n": [1, 2, 3]},
}
ROUNDS = 7


def _stdlib() -> Callable[[Any], Any]:
    dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=True).encode
    loads = json.loads

    def trip(value: Any) -> Any:
        return loads(dumps(value).encode("ascii").decode("utf-8"))

    return trip


def _conveyor() -> Callable[[Any], Any]:
    codec = JsonCodec()

    def trip(value: Any) -> Any:
        return codec.decode(codec.encode(value))

    return trip


def _rate(trip: Callable[[Any], Any], value: Any, seconds: float = 0.2) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            trip(value)
        count += 200
    return count / elapsed


def main() -> None:
    report = Report("codec")
    systems = {"conveyor JsonCodec": _conveyor(), "stdlib json": _stdlib()}
    print(f"round trips per second, best of {ROUNDS} interleaved rounds")
    for kind, value in PAYLOADS.items():
        best = dict.fromkeys(systems, 0.0)
        for _ in range(ROUNDS):
            for name, trip in systems.items():
                best[name] = max(best[name], _rate(trip, value))
        for name, rate in best.items():
            report.add(f"round trip, {kind}", name, rate, unit="round trips/s")
        ratio = best["conveyor JsonCodec"] / best["stdlib json"]
        print(
            f"{kind:12}  conveyor {best['conveyor JsonCodec']:>10,.0f}"
            f"  stdlib {best['stdlib json']:>10,.0f}  ratio {ratio:.2f}"
        )
    print(f"saved {report.save()}")


if __name__ == "__main__":
    main()

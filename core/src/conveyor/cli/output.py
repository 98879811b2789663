"""Rendering for the command line: rich tables for people, JSON for scripts."""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import sys
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from rich.console import Console

from conveyor.expose import QueueInfo, RunningWorker, Statistic, StatType
from conveyor.task import Task

__all__ = [
    "WIDE",
    "stdout",
    "stderr",
    "emit_json",
    "jsonable",
    "task_json",
    "stat_json",
    "queue_json",
    "worker_json",
    "when",
    "compact",
    "shorten",
    "readable",
    "percent",
    "relative",
    "stat_title",
    "stat_value",
    "sort_stats",
]


WIDE = 200
"""Line width when output goes to a file or pipe and ``COLUMNS`` is unset: tables stay whole."""


def stdout() -> Console:
    """A console on standard output: the terminal's width, else ``COLUMNS``, else ``WIDE``."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = WIDE
    return console


@functools.cache
def stderr() -> Console:
    """The console on standard error, for progress, live status and log records.

    One per process: a live line and the log records printed while it shows must
    go through the same console, which then prints each record above the line
    instead of gluing it on.
    """
    return Console(stderr=True, highlight=False)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on standard output."""
    json.dump(jsonable(data), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 and undecodable bytes as ``{"base64": ...}``."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def task_json(task: Task[Any]) -> dict[str, Any]:
    """One decoded task as a JSON object."""
    return {
        "id": str(task.id),
        "queue": task.queue,
        "status": task.status.value,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "priority": task.priority,
        "created_at": task.created_at,
        "run_at": task.run_at,
        "args": task.args,
        "result": task.result,
        "last_error": task.last_error,
        "lock_by": task.lock_by,
        "lease_until": task.lease_until,
        "meta": dict(task.meta),
        "name": task.name,
    }


def stat_json(stat: Statistic) -> dict[str, Any]:
    """One statistics row as a JSON object (the value kept as the backend gave it)."""
    return {
        "title": stat.title,
        "type": stat.stat_type.value,
        "value": stat.value,
        "priority": stat.priority,
    }


def queue_json(queue: QueueInfo, gone: Collection[str] = ()) -> dict[str, Any]:
    """One queue as a JSON object; workers named in ``gone`` are left out."""
    return {
        "name": queue.name,
        "stats": [stat_json(s) for s in sort_stats(queue.stats)],
        "workers": [w for w in queue.workers if w not in gone],
        "activity": list(queue.activity),
    }


def worker_json(worker: RunningWorker, alive: bool) -> dict[str, Any]:
    """One registered worker as a JSON object; ``alive`` is false once it is gone."""
    return {
        "id": worker.id,
        "queue": worker.queue,
        "backend": worker.backend,
        "started_at": worker.started_at,
        "last_heartbeat": worker.last_heartbeat,
        "layers": worker.layers,
        "alive": alive,
    }


def when(value: datetime | None) -> str:
    """A datetime as ``2025-01-31 12:00:00Z`` (UTC), or ``-``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def relative(value: datetime, now: datetime | None = None) -> str:
    """A time as a short distance from now: ``now``, ``in 5m``, ``3h ago``."""
    seconds = (value - (now or datetime.now(UTC))).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "now"
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if size >= length:
            amount = f"{int(size // length)}{unit}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def compact(value: Any, limit: int = 60) -> str:
    """A payload or result as one line of JSON, shortened to ``limit`` characters
    (with a ``…``); bytes the codec could not read are shown as the text they hold."""
    if value is None:
        return "-"
    if isinstance(value, bytes | bytearray):
        raw = " ".join(bytes(value).decode("utf-8", "backslashreplace").split())
        text = f"<{len(value)} bytes, unreadable: {raw}>"
        if len(text) > limit:
            text = text[: limit - 2] + "…>"
        return text
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        text = repr(value)
    return shorten(text, limit)


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with a visible ``…``."""
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (a lone surrogate) written as ``\\udXXX``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def stat_title(title: str) -> str:
    """``PENDING_JOBS`` → ``Pending jobs``; other titles unchanged."""
    if title.isupper() or "_" in title:
        words = title.replace("_", " ").strip().lower()
        return words[:1].upper() + words[1:]
    return title


def stat_value(stat: Statistic) -> str:
    """A statistic's value as its ``StatType`` says to read it; unparseable values as given."""
    raw = stat.value.strip()
    try:
        if stat.stat_type is StatType.NUMBER:
            return f"{int(float(raw)):,}"
        if stat.stat_type is StatType.DECIMAL:
            return f"{float(raw):,.2f}"
        if stat.stat_type is StatType.PERCENTAGE:
            number = float(raw.rstrip("%").strip())
            return f"{percent(number)} %" if math.isfinite(number) else raw
        if stat.stat_type is StatType.TIMESTAMP:
            return _timestamp(raw)
    except (ValueError, OverflowError):
        pass
    return raw


def percent(number: float) -> str:
    """``number`` with one decimal, but never rounded up to 100 nor down to 0:
    99.99 shows as ``99.99`` (cut, not rounded), 0.001 as ``0.001``."""
    exact = Decimal(repr(float(number) + 0.0))  # + 0.0: -0.0 is 0.0
    text = f"{exact:.1f}"
    if 0 < exact < 100 and Decimal(text) >= 100:
        return f"{exact.quantize(Decimal('0.01'), rounding=ROUND_DOWN)}"
    decimals = 1
    while 0 < exact < 100 and Decimal(text) == 0 and decimals < 12:
        decimals += 1
        text = f"{exact:.{decimals}f}"
    return text


def _timestamp(raw: str) -> str:
    try:
        seconds = float(raw)
    except ValueError:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return when(parsed)
    # Epoch values this large are milliseconds (past the year 5000 in seconds).
    if seconds > 1e11:
        seconds /= 1000.0
    return when(datetime.fromtimestamp(seconds, UTC))


def sort_stats(stats: Iterable[Statistic]) -> list[Statistic]:
    """Rows in display order: by ``priority`` (rows without one last), then as given."""
    rows = list(stats)
    return sorted(rows, key=lambda s: (s.priority is None, s.priority or 0))

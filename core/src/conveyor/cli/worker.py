"""``conveyor worker MODULE:FUNCTION``: run a handler over the backend's tasks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from conveyor.cli.errors import CliError
from conveyor.cli.loading import import_handler
from conveyor.cli.output import stderr
from conveyor.cli.parser import backend_option
from conveyor.cli.payload import MAX_CONCURRENCY, bounded_arg, queue_arg, seconds_arg, text_arg
from conveyor.cli.session import opened

__all__ = ["configure", "Meter"]

logger = logging.getLogger("conveyor.cli")

DESCRIPTION = """\
Import FUNCTION from MODULE (the current directory is importable) and run it on
each task until SIGINT or SIGTERM (tasks in flight get --grace seconds to
finish; a second signal stops at once), or with --burst until nothing is ready
and nothing is in flight. On a terminal a live line shows done, failed and
in-flight tasks and the rate; otherwise the worker logs plain lines."""


def configure(commands: Any) -> None:
    """Add the ``worker`` command."""
    parser = commands.add_parser("worker", help="run a handler on tasks", description=DESCRIPTION)
    backend_option(parser)
    parser.add_argument("handler", metavar="MODULE:FUNCTION", help="e.g. tasks:send_email")
    parser.add_argument(
        "--concurrency",
        "-c",
        type=bounded_arg(1, MAX_CONCURRENCY),
        default=10,
        metavar="N",
        help="tasks at once (default: 10)",
    )
    parser.add_argument(
        "--queue", "-q", type=queue_arg, help="queue to serve (default: the backend's)"
    )
    parser.add_argument(
        "--burst", action="store_true", help="exit once nothing is ready and nothing in flight"
    )
    parser.add_argument("--name", type=text_arg, help="worker name (default: host:pid:random)")
    parser.add_argument(
        "--grace",
        type=seconds_arg,
        default=30.0,
        metavar="SECONDS",
        help="how long a stop waits for tasks in flight (default: 30)",
    )
    parser.set_defaults(command=run)


class Meter:
    """Done/failed/in-flight counts and a recent tasks-per-second rate, read from a worker."""

    def __init__(self, worker: Any, window: float = 5.0) -> None:
        self.worker = worker
        self.window = window
        self.started = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def finished(self) -> int:
        """Tasks whose attempts ended so far (done plus failed attempts)."""
        return int(self.worker.succeeded) + int(self.worker.failed)

    def sample(self) -> float:
        """Record now and return the rate over the last ``window`` seconds."""
        now, count = time.monotonic(), self.finished()
        self.samples.append((now, count))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        then, before = self.samples[0]
        return (count - before) / (now - then) if now > then else 0.0

    def line(self, rate: float) -> str:
        """The status line."""
        w = self.worker
        return (
            f"worker {w.name} · done {w.succeeded:,} · failed {w.failed:,}"
            f" · in flight {w.in_flight} · {rate:,.1f} tasks/s"
        )

    def summary(self) -> str:
        """The closing line: totals and the average rate."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        w = self.worker
        return (
            f"worker {w.name} stopped: done {w.succeeded:,} · failed {w.failed:,}"
            f" in {elapsed:,.1f} s ({self.finished() / elapsed:,.1f} tasks/s)"
        )


async def _live(meter: Meter, update: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(0.25)
        update(meter.line(meter.sample()))


def run(args: argparse.Namespace) -> int:
    """Import the handler first (fail fast), then open the backend and run."""
    handler = import_handler(args.handler)
    try:
        from conveyor.worker import Worker  # noqa: F401 - checks the worker is installed
    except ImportError as exc:
        raise CliError(f"this conveyor installation has no worker: {exc}") from None
    console = stderr()
    if console.is_terminal:
        handler_log: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        handler_log = logging.StreamHandler()
        handler_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("conveyor")
    root.addHandler(handler_log)
    root.setLevel(logging.INFO)
    try:
        asyncio.run(_work(args, handler, console.is_terminal))
    finally:
        root.removeHandler(handler_log)
    return 0


async def _work(args: argparse.Namespace, handler: Callable[..., Any], terminal: bool) -> None:
    from conveyor.worker import Worker

    config = {"queue": args.queue} if args.queue else {}
    async with opened(args.backend, **config) as backend:
        try:
            worker = Worker(
                backend,
                handler,
                name=args.name,
                concurrency=args.concurrency,
                grace_period=args.grace,
            )
        except (TypeError, ValueError) as exc:
            raise CliError(f"cannot run {args.handler}: {exc}") from None
        meter = Meter(worker)
        if terminal:
            console = stderr()
            with Live(Text(meter.line(0.0)), console=console, transient=True) as live:
                ticker = asyncio.create_task(_live(meter, lambda s: live.update(Text(s))))
                try:
                    await worker.run(burst=args.burst)
                finally:
                    ticker.cancel()
        else:
            await worker.run(burst=args.burst)
        logger.info(meter.summary())

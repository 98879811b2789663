"""``conveyor worker MODULE:FUNCTION`` or ``MODULE:APP``: run a handler, or an app's named
tasks, over the backend's tasks; ``--processes N`` runs N such workers under a supervisor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from conveyor.cli.errors import CliError
from conveyor.cli.loading import import_target
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
and nothing is in flight. Given a conveyor.App instead (MODULE:APP), run every
task of the app, each by its name, on the queues its tasks name (or --queues).
--processes N runs N worker processes, replaces one that dies, and passes
SIGINT/SIGTERM on to all of them. On a terminal a live line shows done, failed
and in-flight tasks and the rate; otherwise the worker logs plain lines."""


def configure(commands: Any) -> None:
    """Add the ``worker`` command."""
    parser = commands.add_parser("worker", help="run a handler on tasks", description=DESCRIPTION)
    backend_option(parser)
    parser.add_argument(
        "handler", metavar="MODULE:FUNCTION|APP", help="e.g. tasks:send_email or myapp.tasks:app"
    )
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
        "--queues",
        type=_queues_arg,
        metavar="Q1,Q2",
        help="an app's queues to serve (default: every queue its tasks name)",
    )
    parser.add_argument(
        "--processes",
        "-p",
        type=bounded_arg(1, MAX_PROCESSES),
        default=None,
        metavar="N",
        help="run N worker processes under a supervisor that replaces one that dies",
    )
    parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
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


MAX_PROCESSES = 256


def _queues_arg(text: str) -> list[str]:
    names = [queue_arg(part.strip()) for part in text.split(",")]
    return list(dict.fromkeys(names))


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
    from conveyor.app import App, NamedTask

    handler = import_target(args.handler)
    if not isinstance(handler, App | NamedTask) and not callable(handler):
        raise CliError(
            f"{args.handler} is a {type(handler).__name__}, not a function or a conveyor.App"
        )
    if args.queues and not isinstance(handler, App):
        raise CliError(
            f"--queues is for an app; {args.handler} is one handler: give it --queue instead"
        )
    if args.queues and args.queue:
        raise CliError("give --queue or --queues, not both")
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
        if args.processes is not None:
            return _supervise(args)
        asyncio.run(_work(args, handler, console.is_terminal and not args.supervised))
    finally:
        root.removeHandler(handler_log)
    return 0


def _supervise(args: argparse.Namespace) -> int:
    """Run this same command, without ``--processes``, in N supervised child processes."""
    from conveyor.app.supervisor import Supervisor

    command = [sys.executable, "-m", "conveyor.cli", "worker", args.handler, "--supervised"]
    if args.backend is not None:
        command += ["--backend", args.backend]
    command += ["--concurrency", str(args.concurrency), "--grace", repr(args.grace)]
    if args.queue:
        command += ["--queue", args.queue]
    if args.queues:
        command += ["--queues", ",".join(args.queues)]
    if args.burst:
        command.append("--burst")
    if args.name:
        # Each process needs a name of its own: leases record who holds a task.
        logger.warning("--name is ignored with --processes: each process names itself")
    return Supervisor(command, args.processes).run()


def _make_worker(args: argparse.Namespace, handler: Any, backend: Any) -> Any:
    from conveyor.app import App, AppWorker, NamedTask
    from conveyor.worker import Worker
    from conveyor.worker.routes import Routes

    options = {"name": args.name, "concurrency": args.concurrency, "grace_period": args.grace}
    if isinstance(handler, App):
        queues = args.queues or ([args.queue] if args.queue else None)
        worker: Any = handler.worker(backend, queues=queues, **options)
        logger.info("app tasks: %s; queues: %s", ", ".join(handler.tasks), ", ".join(worker.queues))
        return worker
    if isinstance(handler, NamedTask):
        queue = args.queue or handler.queue or backend.queue
        return AppWorker(backend, Routes([handler.route]), [queue], options)
    return Worker(backend, handler, **options)


async def _work(args: argparse.Namespace, handler: Any, terminal: bool) -> None:
    from conveyor.app import App

    target = args.backend
    if target is None and isinstance(handler, App) and handler.target is not None:
        target = handler.target
    config = {"queue": args.queue} if args.queue and not isinstance(handler, App) else {}
    async with opened(target, **config) as backend:
        if isinstance(handler, App):
            handler.use(backend)
        try:
            worker = _make_worker(args, handler, backend)
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

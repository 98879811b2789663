"""The read-only commands: ``tasks``, ``show``, ``queues``, ``workers``, ``stats``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.cli.errors import CliError, describe
from conveyor.cli.layout import Column, print_rows
from conveyor.cli.output import (
    compact,
    emit_json,
    queue_json,
    readable,
    relative,
    shorten,
    sort_stats,
    stat_json,
    stat_title,
    stat_value,
    stdout,
    task_json,
    when,
    worker_json,
)
from conveyor.cli.parser import backend_option, json_option
from conveyor.cli.payload import bounded_arg, name_arg, queue_arg
from conveyor.cli.session import opened
from conveyor.expose import MAX_PAGE_SIZE, Filter, RunningWorker, Statistic
from conveyor.lease import DEFAULT_LEASE_SECONDS
from conveyor.status import Status
from conveyor.task import Task
from conveyor.task_id import TaskId

__all__ = ["configure", "task_id_arg", "status_arg", "is_gone", "lease_seconds", "MAX_PAGE"]

MAX_PAGE = 2**31 - 1
"""The highest ``--page``: any store's offset arithmetic holds it."""


def task_id_arg(text: str) -> TaskId:
    """A task id as printed by ``push`` (26 characters of 0-9 and a-v)."""
    try:
        return TaskId.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def status_arg(text: str) -> Status:
    """A ``--status``: a status name in any case."""
    try:
        return Status.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(commands: Any) -> None:
    """Add the listing commands."""
    tasks = commands.add_parser("tasks", help="list tasks, a page at a time")
    backend_option(tasks)
    json_option(tasks)
    tasks.add_argument("--queue", "-q", type=queue_arg, help="only this queue (default: all)")
    tasks.add_argument(
        "--status", "-s", type=status_arg, help="Pending, Queued, Running, Done, Failed or Killed"
    )
    tasks.add_argument("--name", "-n", type=name_arg, help="only tasks with this name")
    tasks.add_argument(
        "--page", type=bounded_arg(1, MAX_PAGE), default=1, metavar="N", help="1 is the oldest"
    )
    tasks.add_argument(
        "--page-size",
        type=bounded_arg(1, MAX_PAGE_SIZE),
        default=20,
        metavar="N",
        help=f"1 to {MAX_PAGE_SIZE} (default: 20)",
    )
    tasks.set_defaults(command=lambda args: asyncio.run(_tasks(args)))

    show = commands.add_parser("show", help="one task: status, attempts, result or error, lease")
    backend_option(show)
    json_option(show)
    show.add_argument("task_id", type=task_id_arg, metavar="TASK_ID")
    show.set_defaults(command=lambda args: asyncio.run(_show(args)))

    queues = commands.add_parser("queues", help="queues with their statistics")
    backend_option(queues)
    json_option(queues)
    queues.set_defaults(command=lambda args: asyncio.run(_queues(args)))

    workers = commands.add_parser(
        "workers",
        help="registered workers",
        description="Registered workers; one whose last heartbeat is older than the"
        " backend's lease is shown as gone (it stopped or died).",
    )
    backend_option(workers)
    json_option(workers)
    workers.add_argument("--queue", "-q", type=queue_arg, help="only this queue's workers")
    workers.set_defaults(command=lambda args: asyncio.run(_workers(args)))

    stats = commands.add_parser("stats", help="the backend's statistics")
    backend_option(stats)
    json_option(stats)
    stats.add_argument(
        "--queue", "-q", type=queue_arg, help="one queue's statistics (default: the whole store)"
    )
    stats.set_defaults(command=lambda args: asyncio.run(_stats(args)))


def _rows(items: Sequence[Any], cells: Callable[[Any], list[str]], width: int) -> list[list[str]]:
    """Each item's cells, made readable; an item that cannot be shown becomes a row
    saying why, so one bad record never hides the others."""
    rows = []
    for item in items:
        try:
            row = cells(item)
        except Exception as exc:  # a foreign record: show what is wrong, keep listing
            name = getattr(item, "id", "?")
            row = [str(name), *["?"] * (width - 2), f"<cannot show: {describe(exc)}>"]
        rows.append([readable(cell) for cell in row])
    return rows


async def _tasks(args: argparse.Namespace) -> int:
    page = Filter(status=args.status, page=args.page, page_size=args.page_size, name=args.name)
    async with opened(args.backend) as backend:
        if args.queue:
            found = await backend.list_tasks(args.queue, page)
        elif backend.supports(Capability.LIST_ALL_TASKS) or not backend.supports(
            Capability.LIST_TASKS
        ):
            found = await backend.list_all_tasks(page)
        else:
            # Without a cross-queue listing, the backend's own queue is the useful default.
            found = await backend.list_tasks(backend.queue, page)
        now = backend.now()
    if args.json:
        emit_json(_json_rows(found, task_json))
        return 0
    console = stdout()
    if not found:
        what = f" {page.status.value}" if page.status else ""
        called = f" named {args.name!r}" if args.name else ""
        console.print(readable(f"No{what} tasks{called} on page {page.page}."))
        return 0
    named = any(getattr(task, "name", None) for task in found)
    columns = [
        Column("id", key=True),
        Column("queue", key=True),
        Column("status", key=True),
        *([Column("name", least=10)] if named else []),
        Column("tries", whole=True),
        Column("pri", whole=True),
        Column("runs", whole=True),
        Column("args"),
        Column("outcome"),
    ]

    def cells(task: Task[Any]) -> list[str]:
        return [
            str(task.id),
            task.queue,
            task.status.value,
            *([shorten(task.name or "-", 40)] if named else []),
            f"{task.attempt}/{task.max_attempts}",
            str(task.priority),
            relative(task.run_at, now),
            compact(task.args, 40),
            _outcome(task, 40),
        ]

    print_rows(console, columns, _rows(found, cells, len(columns)))
    if len(found) == page.page_size:
        console.print(f"Page {page.page}; more may follow: --page {page.page + 1}")
    return 0


def _json_rows(items: Sequence[Any], convert: Callable[[Any], dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        try:
            out.append(convert(item))
        except Exception as exc:  # a foreign record: say so in its place
            out.append({"id": str(getattr(item, "id", "?")), "error": describe(exc)})
    return out


def _outcome(task: Task[Any], limit: int) -> str:
    if task.last_error and task.result is None:
        return shorten(task.last_error, limit)
    return compact(task.result, limit)


async def _show(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.FETCH_BY_ID) as backend:
        task = await backend.fetch_by_id(args.task_id)
        if task is None:
            raise CliError(f"no task {args.task_id} in backend {backend.name!r}")
    if args.json:
        emit_json(_json_rows([task], task_json)[0])
        return 0
    fields: list[tuple[str, Callable[[], str]]] = [
        ("id", lambda: str(task.id)),
        ("name", lambda: task.name or "-"),
        ("queue", lambda: task.queue),
        ("status", lambda: task.status.value),
        ("attempts", lambda: f"{task.attempt} of {task.max_attempts}"),
        ("priority", lambda: str(task.priority)),
        ("created", lambda: when(task.created_at)),
        ("run at", lambda: when(task.run_at)),
        ("args", lambda: compact(task.args, 2000)),
        ("result", lambda: compact(task.result, 2000)),
        ("last error", lambda: task.last_error or "-"),
        ("lease holder", lambda: task.lock_by or "-"),
        ("lease until", lambda: when(task.lease_until)),
    ]
    if task.meta:
        fields.append(("meta", lambda: compact(dict(task.meta), 2000)))
    rows = []
    for field, value in fields:
        try:
            text = value()
        except Exception as exc:  # one unreadable field never hides the others
            text = f"<cannot show: {describe(exc)}>"
        rows.append([field, readable(text)])
    columns = [Column("field", key=True), Column("value", least=20)]
    print_rows(stdout(), columns, rows, header=False, gap=2)
    return 0


def lease_seconds(backend: Backend) -> float:
    """The backend's lease (``BackendConfig.lease_seconds``), else the default 30 s."""
    value = getattr(getattr(backend.plugin, "config", None), "lease_seconds", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_LEASE_SECONDS


def is_gone(worker: RunningWorker, now: datetime, lease: float) -> bool:
    """Whether ``worker`` stopped heartbeating: ``now >= last_heartbeat + lease``."""
    try:
        return now >= worker.last_heartbeat + timedelta(seconds=lease)
    except (TypeError, OverflowError):
        return False


async def _queues(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.LIST_QUEUES) as backend:
        found = await backend.list_queues()
        gone: set[str] = set()
        if backend.supports(Capability.LIST_WORKERS):
            now, lease = backend.now(), lease_seconds(backend)
            gone = {w.id for w in await backend.list_workers(None) if is_gone(w, now, lease)}
    if args.json:
        emit_json([queue_json(q, gone) for q in found])
        return 0
    console = stdout()
    if not found:
        console.print("No queues yet: a queue appears when a task is pushed to it.")
        return 0
    titles: list[str] = []
    for queue in found:
        for stat in sort_stats(queue.stats):
            if stat.title not in titles:
                titles.append(stat.title)
    rows = []
    for queue in found:
        by_title = {s.title: stat_value(s) for s in queue.stats}
        alive = [w for w in queue.workers if w not in gone]
        rows.append([queue.name, *(by_title.get(t, "-") for t in titles), str(len(alive))])
    # Values stay whole (each column is at least its widest value); headers such
    # as "Pending jobs" wrap between words.
    columns = [
        Column("queue", key=True),
        *(
            Column(stat_title(t), least=max(len(r[i + 1]) for r in rows), justify="right")
            for i, t in enumerate(titles)
        ),
        Column("workers", whole=True, justify="right"),
    ]
    print_rows(console, columns, [[readable(c) for c in r] for r in rows])
    return 0


async def _workers(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.LIST_WORKERS) as backend:
        found = await backend.list_workers(args.queue)
        now, lease = backend.now(), lease_seconds(backend)
    if args.json:
        emit_json(_json_rows(found, lambda w: worker_json(w, not is_gone(w, now, lease))))
        return 0
    console = stdout()
    if not found:
        console.print("No workers registered.")
        return 0
    columns = [
        Column("worker", key=True),
        Column("queue", key=True),
        Column("state", key=True),
        Column("backend", least=6),
        Column("started"),
        Column("last heartbeat"),
        Column("layers"),
    ]

    def cells(worker: RunningWorker) -> list[str]:
        return [
            worker.id,
            worker.queue,
            "gone" if is_gone(worker, now, lease) else "alive",
            worker.backend,
            when(worker.started_at),
            when(worker.last_heartbeat),
            worker.layers or "-",
        ]

    print_rows(console, columns, _rows(found, cells, len(columns)), gap=2)
    return 0


async def _stats(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.METRICS) as backend:
        rows = await backend.metrics(args.queue)
        name = backend.name
    if args.json:
        emit_json([stat_json(s) for s in sort_stats(rows)])
        return 0
    render_stats(rows, f"{name} · {args.queue}" if args.queue else name)
    return 0


def render_stats(rows: list[Statistic], title: str) -> None:
    """Statistics as a two-column table, values formatted by their ``StatType``."""
    table = [[readable(stat_title(s.title)), readable(stat_value(s))] for s in sort_stats(rows)]
    columns = [Column("statistic", key=True), Column("value", whole=True, justify="right")]
    print_rows(stdout(), columns, table, title=readable(title), gap=2)

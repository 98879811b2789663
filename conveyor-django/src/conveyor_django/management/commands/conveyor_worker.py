"""``manage.py conveyor_worker``: run the project's Django tasks stored by ``ConveyorBackend``."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conveyor import BackendUnavailable, ConveyorError
from conveyor_django.backend import ConveyorBackend
from conveyor_django.compat import task_backends
from conveyor_django.runner import run_workers


class Command(BaseCommand):  # type: ignore[misc]
    help = (
        "Run a conveyor worker for this project's tasks: one per queue of the task backend,"
        " each task run by its module path. Stops on SIGINT/SIGTERM (tasks in flight finish)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--backend", default="default", help="the TASKS alias to serve (default: default)"
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="NAME",
            help="a queue to serve (repeatable; default: every queue of the backend's QUEUES)",
        )
        parser.add_argument(
            "--concurrency", type=int, default=10, help="tasks in flight per queue (default 10)"
        )
        parser.add_argument("--burst", action="store_true", help="stop once every queue is drained")

    def handle(self, *args: Any, **options: Any) -> None:
        alias: str = options["backend"]
        try:
            backend = task_backends[alias]
        except Exception as exc:
            raise CommandError(f"no task backend {alias!r} in TASKS: {exc}") from exc
        if not isinstance(backend, ConveyorBackend):
            raise CommandError(
                f"TASKS[{alias!r}] is {type(backend).__name__}, not"
                " conveyor_django.ConveyorBackend: this command runs conveyor's tasks only"
            )
        queues: list[str] = options["queues"] or sorted(backend.queues) or ["default"]
        unknown = [q for q in queues if backend.queues and q not in backend.queues]
        if unknown:
            raise CommandError(
                f"queue {unknown[0]!r} is not in TASKS[{alias!r}]['QUEUES']"
                f" ({', '.join(sorted(backend.queues))})"
            )
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        started = (
            f"conveyor worker: {backend.url} queues {', '.join(queues)}"
            f" (concurrency {options['concurrency']}{', burst' if options['burst'] else ''})"
        )
        try:
            opened = backend.open()
            workers = asyncio.run(
                run_workers(
                    opened,
                    queues,
                    alias,
                    concurrency=options["concurrency"],
                    burst=options["burst"],
                    ready=lambda: self.stdout.write(started),
                )
            )
        except BackendUnavailable as exc:
            raise CommandError(str(exc), returncode=3) from exc
        except ConveyorError as exc:
            raise CommandError(str(exc)) from exc
        succeeded = sum(w.succeeded for w in workers)
        failed = sum(w.failed for w in workers)
        self.stdout.write(f"conveyor worker: stopped; {succeeded} succeeded, {failed} failed")

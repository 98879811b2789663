"""``AppWorker``: one routing ``Worker`` per queue of an app, run and stopped together."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.errors import UnsupportedCapability
from conveyor.worker import Worker
from conveyor.worker.routes import Routes
from conveyor.worker.shutdown import Shutdown

__all__ = ["AppWorker"]


class AppWorker:
    """Runs an app's tasks on one or more queues of a backend, routing each by its name.

    One queue is one ``Worker``; more queues are one ``Worker`` each (over
    ``backend.make_shared(queue)``), started together and stopped together:
    SIGINT/SIGTERM (or ``stop()``) stops them all gracefully, a second one at once.
    ``concurrency`` applies to each queue.
    """

    def __init__(
        self, backend: Backend, routes: Routes, queues: Sequence[str], options: dict[str, Any]
    ) -> None:
        options = dict(options)
        self.handle_signals: bool = options.pop("handle_signals", True)
        base = options.pop("name", None) or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.name: str = base
        self.queues = list(dict.fromkeys(queues))
        self.routes = routes
        self.grace_period: float = options.get("grace_period", 30.0)
        self._opened: list[Backend] = []
        self.workers: list[Worker] = []
        single = len(self.queues) == 1
        for queue in self.queues:
            target = self._backend_for(backend, queue)
            name = base if single else f"{base}/{queue}"
            self.workers.append(
                Worker(
                    target,
                    routes,
                    name=name,
                    handle_signals=self.handle_signals and single,
                    **options,
                )
            )

    def _backend_for(self, backend: Backend, queue: str) -> Backend:
        if queue == backend.queue:
            return backend
        if not backend.supports(Capability.MAKE_SHARED):
            raise UnsupportedCapability(backend.name, Capability.MAKE_SHARED.value, ()) from None
        shared = backend.make_shared(queue)
        self._opened.append(shared)
        return shared

    # --- what the CLI's meter reads -----------------------------------------------------

    @property
    def succeeded(self) -> int:
        """Tasks whose handler returned, on every queue."""
        return sum(w.succeeded for w in self.workers)

    @property
    def failed(self) -> int:
        """Attempts that failed, on every queue."""
        return sum(w.failed for w in self.workers)

    @property
    def in_flight(self) -> int:
        """Tasks held now, on every queue."""
        return sum(w.in_flight for w in self.workers)

    # --- running ----------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop every queue's worker (``now``: without the grace period)."""
        for worker in self.workers:
            worker.stop(now=now)

    async def run(self, *, burst: bool = False) -> None:
        """Run until stopped, or with ``burst=True`` until every queue is drained."""
        await self._together(lambda w: w.run(burst=burst))

    async def drain(self, *, within: float | timedelta) -> None:
        """``Worker.drain`` on every queue at once."""
        await self._together(lambda w: w.drain(within=within))

    async def _together(self, start: Callable[[Worker], Awaitable[None]]) -> None:
        try:
            if len(self.workers) == 1:
                await start(self.workers[0])
                return
            await self._run_all(start)
        finally:
            for shared in self._opened:
                await shared.aclose()
            self._opened.clear()

    async def _run_all(self, start: Callable[[Worker], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        shutdown = Shutdown(self.name, self.grace_period)
        installed = shutdown.install_signals(loop) if self.handle_signals else False
        runs: list[asyncio.Future[None]] = [asyncio.ensure_future(start(w)) for w in self.workers]
        relay = loop.create_task(self._relay(shutdown))
        try:
            done, _ = await asyncio.wait(runs, return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                self.stop()  # one queue's worker failed: stop the others too
            await asyncio.gather(*runs, return_exceptions=True)
        finally:
            relay.cancel()
            if installed:
                shutdown.remove_signals(loop)
        for run in runs:
            if not run.cancelled() and (error := run.exception()) is not None:
                raise error

    async def _relay(self, shutdown: Shutdown) -> None:
        """Pass the signals the shared ``Shutdown`` receives on to every worker."""
        await shutdown.requested.wait()
        self.stop()
        await shutdown.forced.wait()
        self.stop(now=True)

    def __repr__(self) -> str:
        return f"<AppWorker {self.name!r} queues={','.join(self.queues)}>"

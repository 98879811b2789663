"""The worker: polls a backend, runs a handler on each task, acknowledges the outcome.

``Worker`` holds the configuration and the lifecycle (run, stop, pause,
resume, events); ``conveyor.lanes`` is the machinery of one run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from conveyor.backend import Backend
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.context import WorkerInfo
from conveyor.events import (
    Event,
    Listener,
    Start,
    Stop,
    WorkerState,
    deliver,
)
from conveyor.handler import HandlerSpec, inspect_handler
from conveyor.heartbeat import beat
from conveyor.lanes import Lanes
from conveyor.lease import DEFAULT_LEASE_SECONDS
from conveyor.middleware import Middleware
from conveyor.middleware.retry import RetryPolicy
from conveyor.poll_strategy import PollStrategy
from conveyor.shutdown import Shutdown

__all__ = ["Worker", "WorkerState", "DEFAULT_CONCURRENCY"]

logger = logging.getLogger("conveyor.worker")

DEFAULT_CONCURRENCY = 10


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _backend_setting(backend: Backend, name: str, default: Any) -> Any:
    """A setting of the backend plugin's config (``lease_seconds``, ``clock``), if it has one."""
    return getattr(getattr(backend.plugin, "config", None), name, default)


class Worker:
    """Runs ``handler`` on the tasks of ``backend``.

    ``handler(args)`` or ``handler(args, ctx)``, ``async def`` or plain (plain
    functions run in a thread pool); ``args`` is decoded to the first
    parameter's annotation. ``concurrency`` bounds the tasks in flight.
    ``middleware`` wraps every run, outermost first; a ``RetryPolicy`` is put
    outermost unless you pass one. ``grace_period``: how long a stop waits for
    tasks in flight before cancelling and releasing them. ``clock``: "now" for
    retry times (default: the backend's configured clock, else the system's).
    """

    def __init__(
        self,
        backend: Backend,
        handler: Callable[..., Any],
        *,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        middleware: Sequence[Middleware] | None = None,
        grace_period: float = 30.0,
        heartbeat_interval: float | None = None,
        resume_interval: float | None = None,
        poll_strategy: PollStrategy | None = None,
        listeners: Iterable[Listener] = (),
        clock: Clock | None = None,
        handle_signals: bool = True,
        error_backoff: float = 0.1,
        error_backoff_max: float = 30.0,
    ) -> None:
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(
                f"concurrency must be a whole number of at least 1, not {concurrency!r}"
            )
        if not grace_period >= 0:
            raise ValueError(f"grace_period must be zero or more seconds, not {grace_period!r}")
        self.backend = backend
        self.spec: HandlerSpec = inspect_handler(handler)
        self.name = name or _default_name()
        self.concurrency = concurrency
        self.grace_period = grace_period
        self.clock: Clock = clock or _backend_setting(backend, "clock", SYSTEM_CLOCK)
        lease = float(_backend_setting(backend, "lease_seconds", DEFAULT_LEASE_SECONDS))
        self.heartbeat_interval = heartbeat_interval or max(0.01, lease / 3)
        self.resume_interval = resume_interval or max(self.heartbeat_interval, lease)
        self.poll_strategy = poll_strategy
        self.handle_signals = handle_signals
        self.error_backoff = error_backoff
        self.error_backoff_max = error_backoff_max
        self.state = WorkerState.PENDING
        self.succeeded = 0
        self.failed = 0
        self._listeners: list[Listener] = list(listeners)
        self._chain_items, self._policy, self._direct = self._assemble(middleware)
        self.info = WorkerInfo(
            self.name,
            backend.queue,
            concurrency,
            layers=" > ".join(type(m).__name__ for m in self.layers),
        )
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._paused = False
        self._stop_requested = False
        self._shutdown: Shutdown | None = None

    # --- configuration ------------------------------------------------------------

    def _assemble(
        self, middleware: Sequence[Middleware] | None
    ) -> tuple[list[Middleware], RetryPolicy, bool]:
        items = list(middleware or ())
        policy: RetryPolicy | None = None
        for index, item in enumerate(items):
            if isinstance(item, RetryPolicy):
                if item.clock is None:
                    item = items[index] = attrs.evolve(item, clock=self.clock)
                policy = policy or item
        if policy is None:
            policy = RetryPolicy(clock=self.clock)
            items.insert(0, policy)
        items += list(self.backend.middleware())
        self.layers = tuple(items)
        if items[0] is policy:
            # Outermost, the policy sees whatever the chain raises: the lanes apply it to
            # that exception themselves (same outcome, one coroutine less per task, and
            # events keep the original exception).
            items = items[1:]
        return items, policy, not items

    def on(self, listener: Listener) -> Listener:
        """Add an event listener (usable as a decorator); it receives every event."""
        self._listeners.append(listener)
        return listener

    def _emit(self, event: Event) -> None:
        deliver(self._listeners, event)

    # --- control --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking tasks; those in flight get ``grace_period`` to finish."""
        self._stop_requested = True
        if self._shutdown is not None:
            self._shutdown.request()

    def pause(self) -> None:
        """Take no new tasks until ``resume()``; tasks in flight carry on."""
        if self.state is WorkerState.RUNNING:
            self.state = WorkerState.PAUSED
        self._paused = True
        self._resumed.clear()

    def resume(self) -> None:
        """Take tasks again after ``pause()``."""
        if self.state is WorkerState.PAUSED:
            self.state = WorkerState.RUNNING
        self._paused = False
        self._resumed.set()

    @property
    def in_flight(self) -> int:
        """How many tasks this worker holds now."""
        return 0 if self._shutdown is None else self._shutdown.in_flight

    # --- running ----------------------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Run until stopped (``stop()``, SIGINT, SIGTERM), or with ``burst=True``
        until nothing is ready and nothing is in flight."""
        if self.state in (WorkerState.RUNNING, WorkerState.PAUSED):
            raise RuntimeError(f"worker {self.name!r} is already running")
        loop = asyncio.get_running_loop()
        hooks = self.backend.hooks
        shutdown = self._shutdown = Shutdown(self.name, self.grace_period)
        if self._stop_requested:
            shutdown.request()
        self.state = WorkerState.RUNNING if self._resumed.is_set() else WorkerState.PAUSED
        executor = None
        if not self.spec.is_async:
            executor = ThreadPoolExecutor(
                self.concurrency, thread_name_prefix=f"conveyor-{self.name}"
            )
        run = Lanes(self, hooks, loop, executor, burst, shutdown)
        await run.prepare()
        lanes = [
            loop.create_task(run.lane(i), name=f"{self.name}:lane{i}")
            for i in range(self.concurrency)
        ]
        heart = loop.create_task(beat(run), name=f"{self.name}:heartbeat")
        installed = shutdown.install_signals(loop) if self.handle_signals else False
        if self._listeners:
            self._emit(Start(self.name))
        logger.info(
            "worker %s started on %s queue %r (concurrency %d)",
            self.name,
            self.backend.name,
            self.backend.queue,
            self.concurrency,
        )
        try:
            await shutdown.requested.wait()
            await shutdown.drain(lanes, run.idle_lanes())
        finally:
            shutdown.stopping = True
            for lane in lanes:
                lane.cancel()
            heart.cancel()
            await asyncio.gather(*lanes, heart, return_exceptions=True)
            if installed:
                shutdown.remove_signals(loop)
            await run.close()
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            self.state = WorkerState.STOPPED
            self._stop_requested = False
            logger.info("worker %s stopped", self.name)
            if self._listeners:
                self._emit(Stop(self.name))

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} {self.state.value} concurrency={self.concurrency}>"

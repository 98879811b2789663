"""The worker: polls a backend, runs a handler on each task, acknowledges the outcome.

``Worker`` holds the configuration and the lifecycle (run, drain, stop, pause,
resume, events). A run hands what it needs to the machinery below it
(``Lanes``, ``beat``) as ``Settings`` and ``Live``; nothing below imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

import attrs

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.context import WorkerInfo
from conveyor.events import Event, Listener, Start, Stop, WorkerState
from conveyor.lease import DEFAULT_LEASE_SECONDS
from conveyor.middleware.base import Middleware
from conveyor.middleware.retry import RetryPolicy
from conveyor.poll_strategy import PollStrategy
from conveyor.worker.handler import HandlerSpec, inspect_handler
from conveyor.worker.heartbeat import beat
from conveyor.worker.horizon import Horizon
from conveyor.worker.lanes import Lanes
from conveyor.worker.routes import Routes
from conveyor.worker.shutdown import Shutdown
from conveyor.worker.state import Live, Settings
from conveyor.worker.threads import HandlerThreads

__all__ = ["Worker", "DEFAULT_CONCURRENCY", "DEFAULT_GIVE_UP_AFTER"]

logger = logging.getLogger("conveyor.worker")

DEFAULT_CONCURRENCY = 10
DEFAULT_GIVE_UP_AFTER = 300.0
"""Seconds of nothing but failed polls after which a running worker stops."""


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _backend_setting(backend: Backend, name: str, default: Any) -> Any:
    """The backend's ``clock`` or ``lease_seconds``: the facade's, else its plugin config's."""
    value = getattr(backend, name, None)
    if value is None:
        value = getattr(getattr(backend.plugin, "config", None), name, None)
    return default if value is None else value


def _seconds(value: float | timedelta, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValueError(f"{what} must be zero or more seconds (or a timedelta), not {value!r}")
    return float(seconds)


class Worker:
    """Runs ``handler`` on the tasks of ``backend``.

    ``handler(args)`` or ``handler(args, ctx)``, ``async def`` or plain (plain
    functions run in threads); ``args`` is decoded to the first parameter's
    annotation. Given ``Routes`` instead of one handler, the worker runs each
    task with the route of its ``Task.name``; a task whose name has no route
    is killed with an error naming the known ones (``conveyor.App.worker``
    builds this for an app). ``concurrency`` bounds the tasks in flight. ``middleware``
    wraps every run, outermost first; a ``RetryPolicy`` is put outermost
    unless you pass one. ``grace_period``: how long a stop waits for tasks in
    flight before cancelling and releasing them. ``clock``: "now" for retry
    times (default: the backend's configured clock, else the system's).
    ``give_up_after``: seconds of nothing but failed polls after which a
    running worker stops and ``run()`` raises ``BackendUnavailable`` (``None``:
    retry for ever).
    """

    def __init__(
        self,
        backend: Backend,
        handler: Callable[..., Any] | Routes,
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
        give_up_after: float | None = DEFAULT_GIVE_UP_AFTER,
    ) -> None:
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(
                f"concurrency must be a whole number of at least 1, not {concurrency!r}"
            )
        if not grace_period >= 0:
            raise ValueError(f"grace_period must be zero or more seconds, not {grace_period!r}")
        if give_up_after is not None and not give_up_after > 0:
            raise ValueError(
                f"give_up_after must be more than 0 seconds (or None), not {give_up_after!r}"
            )
        self.backend = backend
        self.routes: Routes | None = None
        self.spec: HandlerSpec | None = None
        if isinstance(handler, Routes):
            self.routes = handler
        else:
            self.spec = inspect_handler(handler)
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
        self.give_up_after = give_up_after
        self._live = Live(self.name, list(listeners))
        self._chain, self._policy = self._assemble(middleware)
        if self.routes is not None:
            self.routes = self._with_clock(self.routes)
        self.info = WorkerInfo(
            self.name,
            backend.queue,
            concurrency,
            layers=" > ".join(type(m).__name__ for m in self.layers),
        )
        self._stop_requested = False
        self._shutdown: Shutdown | None = None
        self._lanes: Lanes | None = None

    # --- configuration ------------------------------------------------------------

    def _assemble(
        self, middleware: Sequence[Middleware] | None
    ) -> tuple[tuple[Middleware, ...], RetryPolicy]:
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
        return tuple(items), policy

    def _with_clock(self, routes: Routes) -> Routes:
        """Routes whose own retry policies read this worker's clock unless they name one."""
        changed = [
            attrs.evolve(r, policy=attrs.evolve(r.policy, clock=self.clock))
            if r.policy is not None and r.policy.clock is None
            else r
            for r in routes.values()
        ]
        return Routes(changed)

    def _needs_threads(self) -> bool:
        if self.routes is None:
            return self.spec is not None and not self.spec.is_async
        return any(not r.spec.is_async for r in self.routes.values())

    def _settings(self) -> Settings:
        return Settings(
            name=self.name,
            info=self.info,
            spec=self.spec,
            routes=self.routes,
            concurrency=self.concurrency,
            chain=self._chain,
            policy=self._policy,
            clock=self.clock,
            poll_strategy=self.poll_strategy,
            heartbeat_interval=self.heartbeat_interval,
            resume_interval=self.resume_interval,
            error_backoff=self.error_backoff,
            error_backoff_max=self.error_backoff_max,
            give_up_after=self.give_up_after,
        )

    def on(self, listener: Listener) -> Listener:
        """Add an event listener (usable as a decorator); it receives every event."""
        self._live.listeners.append(listener)
        return listener

    def _emit(self, event: Event) -> None:
        if self._live.listeners:
            self._live.emit(event)

    # --- what it reports ------------------------------------------------------------

    @property
    def state(self) -> WorkerState:
        """``Pending → Running ⇄ Paused → Stopped``."""
        return self._live.state

    @property
    def succeeded(self) -> int:
        """Tasks whose handler returned (all runs of this worker)."""
        return self._live.succeeded

    @property
    def failed(self) -> int:
        """Attempts that failed (all runs of this worker)."""
        return self._live.failed

    @property
    def in_flight(self) -> int:
        """How many tasks this worker holds now."""
        return 0 if self._shutdown is None else self._shutdown.in_flight

    # --- control --------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop taking tasks; those in flight get ``grace_period`` to finish (``now``: none;
        they are cancelled and released at once, as a second signal does)."""
        self._stop_requested = True
        if self._shutdown is not None:
            if now:
                self._shutdown.force()
            else:
                self._shutdown.request()

    def pause(self) -> None:
        """Take no new tasks until ``resume()``; tasks in flight carry on.

        A poll waiting for work is cancelled, so a paused worker claims nothing.
        """
        live = self._live
        if live.state is WorkerState.RUNNING:
            live.state = WorkerState.PAUSED
        live.paused = True
        live.resumed.clear()
        if self._lanes is not None:
            self._lanes.poller.interrupt()

    def resume(self) -> None:
        """Take tasks again after ``pause()``."""
        live = self._live
        if live.state is WorkerState.PAUSED:
            live.state = WorkerState.RUNNING
        live.paused = False
        live.resumed.set()

    # --- running ----------------------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Run until stopped (``stop()``, SIGINT, SIGTERM), or with ``burst=True`` until
        nothing is ready and nothing is in flight.

        Raises ``BackendUnavailable`` when the backend cannot be polled: at the
        first failed poll of a burst, after ``give_up_after`` seconds of them otherwise.
        """
        await self._run(burst, None)

    async def drain(self, *, within: float | timedelta) -> None:
        """Run until nothing is ready, nothing is in flight, and nothing more falls due
        within ``within`` (seconds or a timedelta) of now: retries and delayed tasks
        included. For tests and scripts.

        Due times come from the retries this worker acks and, when the backend
        can list tasks, from its queue's waiting tasks. With a ``ManualClock``
        the worker moves the clock to each due time instead of waiting.
        """
        horizon = _seconds(within, "within")
        await self._run(True, self.clock.time() + horizon)

    async def _run(self, burst: bool, until: float | None) -> None:
        live = self._live
        if live.state in (WorkerState.RUNNING, WorkerState.PAUSED):
            raise RuntimeError(f"worker {self.name!r} is already running")
        loop = asyncio.get_running_loop()
        backend = self.backend
        shutdown = self._shutdown = Shutdown(self.name, self.grace_period)
        if self._stop_requested:
            shutdown.request()
        settings = self._settings()
        threads = None
        if self._needs_threads():
            threads = HandlerThreads(self.concurrency, f"conveyor-{self.name}")
        horizon = None
        if until is not None:
            horizon = Horizon(until, self.clock, backend.hooks, backend)
        run = self._lanes = Lanes(settings, live, backend, threads, burst, horizon, shutdown)
        live.state = WorkerState.PAUSED if live.paused else WorkerState.RUNNING
        lanes: list[asyncio.Task[None]] = []
        heart: asyncio.Task[None] | None = None
        installed = False
        try:
            await run.prepare()
            for i in range(self.concurrency):
                lane = loop.create_task(run.lane(i), name=f"{self.name}:lane{i}")
                lane.add_done_callback(run.lane_ended)
                lanes.append(lane)
            resumes = backend.supports(Capability.RESUME_ABANDONED)
            heart = loop.create_task(
                beat(settings, live, backend.hooks, resumes), name=f"{self.name}:heartbeat"
            )
            installed = shutdown.install_signals(loop) if self.handle_signals else False
            self._emit(Start(self.name))
            logger.info(
                "worker %s started on %s queue %r (concurrency %d)",
                self.name,
                backend.name,
                backend.queue,
                self.concurrency,
            )
            await shutdown.requested.wait()
            await shutdown.drain(lanes, run.is_idle)
        finally:
            shutdown.stopping = True
            others = [*lanes, heart] if heart is not None else lanes
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            if installed:
                shutdown.remove_signals(loop)
            await run.close()
            if threads is not None:
                threads.shutdown(wait=False, cancel_futures=True)
            live.state = WorkerState.STOPPED
            self._stop_requested = False
            self._lanes = None
            logger.info("worker %s stopped", self.name)
            self._emit(Stop(self.name))
        if run.poller.failure is not None:
            raise run.poller.failure

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} {self.state.value} concurrency={self.concurrency}>"

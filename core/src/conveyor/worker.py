"""The worker: polls a backend, runs a handler on each task, acknowledges the outcome.

Hot path: ``concurrency`` long-lived lanes share the backend's poll iterator
behind a lock; a lane polls only when it is free (back-pressure), runs an
``async`` handler inline (no ``asyncio.Task`` per job) and a plain function in
a thread pool, then acks. Events are built only when someone listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from conveyor.backend import Backend
from conveyor.backoff import full_jitter
from conveyor.capability import Capability
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.context import TaskContext, WorkerInfo
from conveyor.errors import PayloadError, StaleLease
from conveyor.events import (
    Error,
    Event,
    Heartbeat,
    Idle,
    Listener,
    Start,
    Stop,
    Success,
    WorkerState,
    deliver,
)
from conveyor.handler import HandlerSpec, inspect_handler
from conveyor.lease import DEFAULT_LEASE_SECONDS
from conveyor.middleware import Invocation, Middleware, Next
from conveyor.middleware.retry import RetryPolicy, describe
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.poll_strategy import PollContext, PollStrategy
from conveyor.shutdown import Shutdown
from conveyor.task import Task

__all__ = ["Worker", "DEFAULT_CONCURRENCY"]

logger = logging.getLogger("conveyor.worker")

DEFAULT_CONCURRENCY = 10
_OUTCOMES = (Done, Retry, Kill, Release)
_DONE_EMPTY = Done(None)


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
            layers=" > ".join(type(m).__name__ for m in self._chain_items),
        )
        self._resumed = asyncio.Event()
        self._resumed.set()
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
        # Only the default policy: apply it inline, sparing a coroutine per task.
        direct = len(items) == 1 and items[0] is policy
        return items, policy, direct

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
        self._resumed.clear()

    def resume(self) -> None:
        """Take tasks again after ``pause()``."""
        if self.state is WorkerState.PAUSED:
            self.state = WorkerState.RUNNING
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
        run = _Run(self, hooks, loop, executor, burst, shutdown)
        await run.prepare()
        lanes = [
            loop.create_task(run.lane(i), name=f"{self.name}:lane{i}")
            for i in range(self.concurrency)
        ]
        heart = loop.create_task(run.heart(), name=f"{self.name}:heartbeat")
        installed = shutdown.install_signals(loop) if self.handle_signals else False
        if self._listeners:
            self._emit(Start(self.name))
        logger.info(
            "worker %s started on %s (concurrency %d)", self.name, self.backend, self.concurrency
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


class _Run:
    """The state of one ``Worker.run``: the shared poll iterator and the lanes over it."""

    def __init__(
        self,
        worker: Worker,
        hooks: Any,
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor | None,
        burst: bool,
        shutdown: Shutdown,
    ) -> None:
        self.worker = worker
        self.hooks = hooks
        self.loop = loop
        self.executor = executor
        self.burst = burst
        self.shutdown = shutdown
        self.acks = worker.backend.supports(Capability.ACK)
        self.lock = asyncio.Lock()
        self.iterator: AsyncIterator[Task[bytes] | None] = hooks.poll(worker.info)
        self.current: list[Task[bytes] | None] = [None] * worker.concurrency
        self.settled: asyncio.Future[None] | None = None
        self.poll_context = PollContext(worker.info)
        self.ticks: AsyncIterator[None] | None = None
        if worker.poll_strategy is not None:
            self.ticks = worker.poll_strategy.ticks(self.poll_context)
        self.call = self._chain()

    async def prepare(self) -> None:
        """Register the worker and bring back dead workers' tasks before the first poll."""
        backend = self.worker.backend
        for capability, call in (
            (Capability.REGISTER_WORKER, lambda: self.hooks.register_worker(self.worker.info)),
            (Capability.RESUME_ABANDONED, self.hooks.resume_abandoned),
        ):
            if backend.supports(capability):
                try:
                    await call()
                except Exception as exc:
                    self._backend_error(f"{capability.value} failed", exc)

    def idle_lanes(self) -> Callable[[int], bool]:
        """Which lanes hold no task (safe to cancel at once when stopping)."""
        return lambda index: self.current[index] is None

    async def close(self) -> None:
        for iterator in (self.iterator, self.ticks):
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception as exc:
                    logger.debug("closing an iterator of worker %s: %r", self.worker.name, exc)

    def _backend_error(self, what: str, exc: BaseException) -> None:
        logger.warning("worker %s: %s: %s", self.worker.name, what, describe(exc), exc_info=exc)
        if self.worker._listeners:
            self.worker._emit(Error(self.worker.name, exc))

    # --- the chain ------------------------------------------------------------------------

    def _chain(self) -> Next:
        spec, loop, executor = self.worker.spec, self.loop, self.executor
        function = spec.function
        call: Next
        if spec.is_async:
            if spec.wants_context:
                call = lambda inv: function(inv.args, inv.context)  # noqa: E731
            else:
                call = lambda inv: function(inv.args)  # noqa: E731
        elif spec.wants_context:
            call = lambda inv: loop.run_in_executor(executor, function, inv.args, inv.context)  # noqa: E731
        else:
            call = lambda inv: loop.run_in_executor(executor, function, inv.args)  # noqa: E731
        for item in reversed(self.worker._chain_items):
            call = _link(item, call)
        return call

    # --- lanes ----------------------------------------------------------------------------

    async def lane(self, index: int) -> None:
        """Poll when free, run, ack; until the worker stops."""
        shutdown, resumed, lock = self.shutdown, self.worker._resumed, self.lock
        while not shutdown.stopping:
            if not resumed.is_set():
                await resumed.wait()
                continue
            await lock.acquire()
            try:
                task = await self._next()
            finally:
                lock.release()
            if task is None:
                return
            if shutdown.stopping:
                # Claimed as the stop came (a cancellation can be lost in a poll's wait
                # on Python 3.11): hand it back unrun.
                await self._ack(task, Release("the worker is stopping"), None)
                return
            if not resumed.is_set():
                # Claimed while pausing: hand it back unrun rather than run it paused.
                await self._ack(task, Release("worker paused"), None)
                continue
            self.current[index] = task
            shutdown.in_flight += 1
            try:
                await self._run(task)
            finally:
                self.current[index] = None
                shutdown.in_flight -= 1
                settled = self.settled
                if settled is not None and not settled.done():
                    settled.set_result(None)

    async def _next(self) -> Task[bytes] | None:
        """The next claimed task, or ``None`` when this lane should end. Called under the lock."""
        worker, shutdown = self.worker, self.shutdown
        errors = 0
        while not shutdown.stopping:
            try:
                item = await self.iterator.__anext__()
            except StopAsyncIteration:
                # The stream ended: nothing more will come. A burst is over; a run waits for stop.
                if self.burst:
                    await self._await_settled()
                    shutdown.request()
                else:
                    await shutdown.requested.wait()
                return None
            except Exception as exc:
                errors += 1
                delay = full_jitter(errors, worker.error_backoff, worker.error_backoff_max)
                self._backend_error(f"poll failed (retrying in {delay:.2f} s)", exc)
                await asyncio.sleep(delay)
                await self._restart_poll()
                continue
            if item is not None:
                self.poll_context.found += 1
                return item
            errors = 0
            if worker._listeners:
                worker._emit(Idle(worker.name))
            if self.burst:
                self.poll_context.empty()
                if shutdown.in_flight == 0:
                    shutdown.request()
                    return None
                # Something may still retry or finish: wait for it rather than poll idly.
                await self._settle_one()
                # A fresh stream answers at once (its first None is immediate), where the
                # old one would first wait for a push that a burst does not expect.
                await self._restart_poll()
                continue
            self.poll_context.empty()
            if self.ticks is not None and not self.burst:
                try:
                    await self.ticks.__anext__()
                except StopAsyncIteration:
                    self.ticks = None  # the strategy ended: leave the pace to the backend
        return None

    async def _restart_poll(self) -> None:
        old, self.iterator = self.iterator, self.hooks.poll(self.worker.info)
        closer = getattr(old, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                logger.debug("closing a poll iterator failed", exc_info=True)

    async def _settle_one(self) -> None:
        self.settled = self.loop.create_future()
        await self.settled

    async def _await_settled(self) -> None:
        while self.shutdown.in_flight:
            await self._settle_one()

    async def _run(self, task: Task[bytes]) -> None:
        worker = self.worker
        spec = worker.spec
        try:
            args = worker.backend.codec.decode(task.args, spec.args_type)
        except PayloadError as exc:
            await self._ack(task, Kill(f"payload cannot be decoded: {exc}"), exc)
            return
        context = None
        if spec.wants_context or not (worker._direct and spec.is_async):
            context = TaskContext(
                task.id, task.attempt, task.max_attempts, task.queue, task.meta, worker.name
            )
        acked = False
        try:
            try:
                if worker._direct and spec.is_async:
                    function = spec.function
                    result = await (function(args, context) if context else function(args))
                else:
                    result = await self.call(Invocation(task, args, context))  # type: ignore[arg-type]
            except Exception as exc:
                outcome = worker._policy.outcome(exc, task.attempt, worker.clock)
                acked = True
                await self._ack(task, outcome, exc)
                return
            if type(result) in _OUTCOMES:
                outcome = result
                error = None if type(result) is Done else RuntimeError(result.error)
                acked = True
                await self._ack(task, outcome, error)
                return
            if result is None:
                outcome = _DONE_EMPTY
            else:
                try:
                    outcome = Done(worker.backend.codec.encode(result))
                except PayloadError as exc:
                    acked = True
                    await self._ack(
                        task, Kill(f"the handler's result cannot be stored: {exc}"), exc
                    )
                    return
            worker.succeeded += 1
            acked = True
            if self.acks:
                await self._ack_done(task, outcome)
            if worker._listeners:
                worker._emit(Success(worker.name, task, result))
        except asyncio.CancelledError:
            if not acked:
                await self._ack(
                    task, Release("the worker shut down before the task finished"), None
                )
            raise

    async def _ack_done(self, task: Task[bytes], outcome: Outcome) -> None:
        try:
            await self.hooks.ack(task, outcome)
        except StaleLease as exc:
            logger.warning("worker %s: %s", self.worker.name, exc)
        except Exception as exc:
            self._backend_error(f"ack of task {task.id} failed", exc)

    async def _ack(self, task: Task[bytes], outcome: Outcome, error: BaseException | None) -> None:
        worker = self.worker
        if type(outcome) is not Done and type(outcome) is not Release:
            worker.failed += 1
            if type(outcome) is Retry and task.attempt < task.max_attempts:
                fate = f"retry at {outcome.run_at:%H:%M:%S.%f}"
            else:
                fate = "killed"
            logger.warning(
                "worker %s: task %s attempt %d/%d failed (%s): %s",
                worker.name, task.id, task.attempt, task.max_attempts, fate,
                outcome.error,  # type: ignore[union-attr]
            )  # fmt: skip
        if self.acks:
            await self._ack_done(task, outcome)
        if worker._listeners and error is not None:
            worker._emit(Error(worker.name, error, task, outcome))

    # --- heartbeat --------------------------------------------------------------------------

    async def heart(self) -> None:
        """Extend leases every ``heartbeat_interval``; resume abandoned tasks now and then."""
        worker, hooks, loop = self.worker, self.hooks, self.loop
        resumes = worker.backend.supports(Capability.RESUME_ABANDONED)
        next_resume = loop.time() + worker.resume_interval
        failures = 0
        while True:
            if failures:
                delay = full_jitter(failures, worker.error_backoff, worker.heartbeat_interval)
            else:
                delay = worker.heartbeat_interval
            await asyncio.sleep(delay)
            try:
                await hooks.heartbeat(worker.info)
                if resumes and loop.time() >= next_resume:
                    next_resume = loop.time() + worker.resume_interval
                    count = await hooks.resume_abandoned()
                    if count:
                        logger.info("worker %s resumed %d abandoned task(s)", worker.name, count)
            except Exception as exc:
                failures += 1
                self._backend_error("heartbeat failed", exc)
                continue
            failures = 0
            if worker._listeners:
                worker._emit(Heartbeat(worker.name))


def _link(item: Middleware, call_next: Next) -> Next:
    def step(invocation: Invocation) -> Awaitable[Any]:
        return item(invocation, call_next)

    return step

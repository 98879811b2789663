"""One run of a worker: lanes taking turns at the backend's poll iterator, running, acking.

Hot path: ``concurrency`` long-lived lanes share the backend's poll iterator;
a lane polls only when it is free (back-pressure), runs an ``async`` handler
inline (no ``asyncio.Task`` per job) and a plain function in a thread pool,
then acks. Events are built only when someone listens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from conveyor.backoff import full_jitter
from conveyor.capability import Capability
from conveyor.context import TaskContext
from conveyor.control import RetryAfter
from conveyor.errors import PayloadError, StaleLease
from conveyor.events import Error, Idle, Success
from conveyor.middleware import Invocation, Middleware, Next
from conveyor.middleware.retry import describe
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.poll_strategy import PollContext
from conveyor.shutdown import Shutdown
from conveyor.task import Task
from conveyor.turn import Turn

if TYPE_CHECKING:
    from conveyor.worker import Worker

__all__ = ["Lanes"]

logger = logging.getLogger("conveyor.worker")

_OUTCOMES = (Done, Retry, Kill, Release)
_DONE_EMPTY = Done(None)
_SHUT_DOWN = "the worker shut down before the task finished"
_ACK_TRIES = 3


class Lanes:
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
        self.turn = Turn()
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
                    self.backend_error(f"{capability.value} failed", exc)

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

    def backend_error(self, what: str, exc: BaseException) -> None:
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
        """Poll when free, run, ack; until the worker stops.

        The common case (an ``async`` handler and no middleware but the default
        retry policy) is inlined here: one coroutine frame per lane, not per task.
        """
        worker, shutdown, turn = self.worker, self.shutdown, self.turn
        resumed, current = worker._resumed, self.current
        spec = worker.spec
        fast = worker._direct and spec.is_async
        wants_context, name = spec.wants_context, worker.name
        function, args_type = spec.function, spec.args_type
        decode = worker.backend.codec.decode
        ack = self.hooks.ack if self.acks else None
        ran = 0
        while not shutdown.stopping:
            if worker._paused:
                await resumed.wait()
                continue
            if turn.busy:
                await turn.wait()
                continue
            turn.busy = True
            try:
                try:
                    task = await self.iterator.__anext__()
                except Exception as exc:  # StopAsyncIteration included
                    task = await self._next(exc)
                else:
                    if task is None:
                        task = await self._next(None)
            finally:
                turn.busy = False
                if turn.waiters:
                    turn.wake()
            if task is None:
                return
            if shutdown.stopping or worker._paused:
                # Claimed as a stop or pause came (on Python 3.11 a cancellation can be
                # lost in a poll's wait): hand it back unrun.
                await self._ack(task, Release("the worker is stopping or paused"), None)
                continue
            current[index] = task
            shutdown.in_flight += 1
            try:
                if not fast:
                    await self._run(task)
                else:
                    acked = False
                    try:
                        try:
                            args = decode(task.args, args_type)
                            if wants_context:
                                context = TaskContext(
                                    task.id, task.attempt, task.max_attempts,
                                    task.queue, task.meta, name, task.name,
                                )  # fmt: skip
                                result = await function(args, context)
                            else:
                                result = await function(args)
                        except _HANDLER_ERRORS as exc:
                            acked = True
                            await self._failed(task, exc)
                        else:
                            acked = True
                            if result is None:
                                worker.succeeded += 1
                                if ack is not None:
                                    try:
                                        await ack(task, _DONE_EMPTY)
                                    except Exception as exc:
                                        await self._ack_failed(task, _DONE_EMPTY, exc)
                                if worker._listeners:
                                    worker._emit(Success(worker.name, task, None))
                            else:
                                await self._finish(task, result)
                    except asyncio.CancelledError:
                        if not acked:
                            await self._ack(task, Release(_SHUT_DOWN), None)
                        raise
            finally:
                current[index] = None
                shutdown.in_flight -= 1
                settled = self.settled
                if settled is not None and not settled.done():
                    settled.set_result(None)
            ran += 1
            if not ran & 255:
                # A lane whose handlers never await would otherwise hold the loop for the
                # whole backlog: let heartbeats, signals and other lanes in now and then.
                await asyncio.sleep(0)

    async def _next(self, first: BaseException | None) -> Task[bytes] | None:
        """After an empty poll (``first is None``) or a poll error: wait as fits, poll again.

        Returns the next claimed task, or ``None`` when this lane should end.
        Called by the lane holding the turn.
        """
        worker, shutdown = self.worker, self.shutdown
        errors = 0
        pending = first
        while not shutdown.stopping:
            if isinstance(pending, StopAsyncIteration):
                # The stream ended: nothing more will come. A burst is over; a run waits for stop.
                if self.burst:
                    await self._await_settled()
                    shutdown.request()
                else:
                    await shutdown.requested.wait()
                return None
            if pending is not None:
                errors += 1
                delay = full_jitter(errors, worker.error_backoff, worker.error_backoff_max)
                self.backend_error(f"poll failed (retrying in {delay:.2f} s)", pending)
                await asyncio.sleep(delay)
                await self._restart_poll()
            else:
                errors = 0
                if worker._listeners:
                    worker._emit(Idle(worker.name))
                self.poll_context.empty()
                if self.burst:
                    if shutdown.in_flight == 0:
                        shutdown.request()
                        return None
                    # Something may still retry or finish: wait for it rather than poll idly.
                    await self._settle_one()
                    # A fresh stream answers at once (its first None is immediate), where
                    # the old one would first wait for a push that a burst does not expect.
                    await self._restart_poll()
                elif self.ticks is not None:
                    try:
                        await self.ticks.__anext__()
                    except StopAsyncIteration:
                        self.ticks = None  # the strategy ended: leave the pace to the backend
            if shutdown.stopping:
                break
            try:
                item = await self.iterator.__anext__()
            except Exception as exc:
                pending = exc
                continue
            if item is not None:
                self.poll_context.found += 1
                return item
            pending = None
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
        """The general path: context, middleware chain, sync handlers in threads."""
        worker = self.worker
        acked = False
        try:
            try:
                args = worker.backend.codec.decode(task.args, worker.spec.args_type)
                context = TaskContext(
                    task.id,
                    task.attempt,
                    task.max_attempts,
                    task.queue,
                    task.meta,
                    worker.name,
                    task.name,
                )
                result = await self.call(Invocation(task, args, context))
            except _HANDLER_ERRORS as exc:
                acked = True
                await self._failed(task, exc)
                return
            acked = True
            await self._finish(task, result)
        except asyncio.CancelledError:
            if not acked:
                await self._ack(task, Release(_SHUT_DOWN), None)
            raise

    async def _failed(self, task: Task[bytes], error: BaseException) -> None:
        if isinstance(error, PayloadError):
            # The args do not decode to what the handler takes: retrying cannot fix that.
            await self._ack(task, Kill(f"payload cannot be decoded: {error}"), error)
        else:
            worker = self.worker
            await self._ack(task, worker._policy.outcome(error, task.attempt, worker.clock), error)

    async def _finish(self, task: Task[bytes], result: Any) -> None:
        """Ack what a handler (or middleware) returned: an outcome, or a value to store."""
        worker = self.worker
        if type(result) in _OUTCOMES:
            error = None if type(result) is Done else RuntimeError(result.error)
            await self._ack(task, result, error)
            return
        if result is None:
            outcome = _DONE_EMPTY
        else:
            try:
                outcome = Done(worker.backend.codec.encode(result))
            except PayloadError as exc:
                message = f"the handler's result cannot be stored: {exc}"
                await self._ack(task, Kill(message), exc)
                return
        worker.succeeded += 1
        if self.acks:
            try:
                await self.hooks.ack(task, outcome)
            except Exception as exc:
                await self._ack_failed(task, outcome, exc)
        if worker._listeners:
            worker._emit(Success(worker.name, task, result))

    async def _ack_failed(self, task: Task[bytes], outcome: Outcome, error: Exception) -> None:
        """An ack raised: a stale lease is final; anything else is retried a few times."""
        worker = self.worker
        for attempt in range(1, _ACK_TRIES + 1):
            if isinstance(error, StaleLease):
                # The task was resumed and handed to another worker: its result is theirs.
                logger.warning("worker %s: %s", worker.name, error)
                return
            if attempt == _ACK_TRIES:
                break
            self.backend_error(f"ack of task {task.id} failed", error)
            await asyncio.sleep(full_jitter(attempt, worker.error_backoff, 1.0))
            try:
                await self.hooks.ack(task, outcome)
                return
            except Exception as exc:
                error = exc
        # Given up: the task stays claimed until this worker's leases lapse (it stops or
        # dies), then resume_abandoned brings it back.
        self.backend_error(f"ack of task {task.id} failed {_ACK_TRIES} times, giving up", error)

    async def _ack(self, task: Task[bytes], outcome: Outcome, error: BaseException | None) -> None:
        worker = self.worker
        if type(outcome) is not Done and type(outcome) is not Release:
            worker.failed += 1
            if type(outcome) is Retry and task.attempt < task.max_attempts:
                fate = f"retry at {outcome.run_at:%H:%M:%S.%f}"
            else:
                fate = "killed"
            # A RetryAfter is the handler's own plan, not a fault: keep it out of warnings.
            level = logging.INFO if isinstance(error, RetryAfter) else logging.WARNING
            logger.log(
                level,
                "worker %s: task %s attempt %d/%d failed (%s): %s",
                worker.name, task.id, task.attempt, task.max_attempts, fate,
                outcome.error,  # type: ignore[union-attr]
            )  # fmt: skip
        if self.acks:
            try:
                await self.hooks.ack(task, outcome)
            except Exception as exc:
                await self._ack_failed(task, outcome, exc)
        if worker._listeners and error is not None:
            worker._emit(Error(worker.name, error, task, outcome))


# A handler that calls sys.exit() or raises KeyboardInterrupt fails its own task;
# it must not take a lane (and the event loop) down with it. Real signals reach
# the worker through its own handlers, not as exceptions from handler code.
_HANDLER_ERRORS = (Exception, SystemExit, KeyboardInterrupt)


def _link(item: Middleware, call_next: Next) -> Next:
    def step(invocation: Invocation) -> Awaitable[Any]:
        return item(invocation, call_next)

    return step

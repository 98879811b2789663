"""One run of a worker: lanes taking turns at the backend's poll stream, running, acking.

Hot path: ``concurrency`` long-lived lanes share the backend's poll iterator;
a lane polls only when it is free (back-pressure), runs an ``async`` handler
inline (no ``asyncio.Task`` per job) and a plain function in a thread, then
acks. Events are built only when someone listens. What happens between tasks
(empty polls, errors, the end of a burst) is ``conveyor.worker.poller``'s.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Any

from conveyor.backend import Backend
from conveyor.backoff import full_jitter
from conveyor.capability import Capability
from conveyor.context import TaskContext
from conveyor.control import RetryAfter
from conveyor.errors import BackendUnavailable, PayloadError, StaleLease
from conveyor.events import Error, Success
from conveyor.middleware.base import Invocation, Next
from conveyor.middleware.retry import RetryPolicy
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.task import Task
from conveyor.task_id import TaskId
from conveyor.worker.entries import Entry, prepare
from conveyor.worker.horizon import Horizon
from conveyor.worker.poller import Poller
from conveyor.worker.routes import UnknownTask, unknown_name
from conveyor.worker.shutdown import Interrupted, Shutdown
from conveyor.worker.state import Live, Settings
from conveyor.worker.threads import HandlerThreads
from conveyor.worker.turn import Turn

__all__ = ["Lanes"]

logger = logging.getLogger("conveyor.worker")

_OUTCOMES = (Done, Retry, Kill, Release)
_DONE_EMPTY = Done(None)
_SHUT_DOWN = "the worker shut down before the task finished"
_ACK_TRIES = 3


class Lanes:
    """The state of one ``Worker.run``: the poll stream and the lanes over it."""

    def __init__(
        self,
        settings: Settings,
        live: Live,
        backend: Backend,
        threads: HandlerThreads | None,
        burst: bool,
        horizon: Horizon | None,
        shutdown: Shutdown,
    ) -> None:
        self.settings = settings
        self.live = live
        self.backend = backend
        self.hooks = hooks = backend.hooks
        self.threads = threads
        self.burst = burst
        self.horizon = horizon
        self.shutdown = shutdown
        self.acks = backend.supports(Capability.ACK)
        self.turn = Turn()
        self.poller = Poller(settings, live, backend.name, hooks, shutdown, burst, horizon)
        self.current: list[Task[bytes] | None] = [None] * settings.concurrency
        self.stragglers: dict[TaskId, Future[Any]] = {}
        """Threads still running handlers whose attempts ended (a time limit passed)."""
        routes = settings.routes
        self.single: Entry | None = None
        self.routes: dict[str | None, Entry] | None = None
        if routes is None:
            assert settings.spec is not None
            self.single = prepare(settings.spec, (), None, settings, backend.codec, self._run_in)
        else:
            self.routes = {
                name: prepare(r.spec, r.middleware, r.policy, settings, backend.codec, self._run_in)
                for name, r in routes.items()
            }

    async def prepare(self) -> None:
        """Register the worker and bring back dead workers' tasks before the first poll.

        A burst run gives up at once on a backend that says it is unavailable.
        """
        hooks, info = self.hooks, self.settings.info
        for capability, call in (
            (Capability.REGISTER_WORKER, lambda: hooks.register_worker(info)),
            (Capability.RESUME_ABANDONED, hooks.resume_abandoned),
        ):
            if self.backend.supports(capability):
                try:
                    await call()
                except Exception as exc:
                    if self.burst and isinstance(exc, BackendUnavailable):
                        raise
                    self.live.backend_error(f"{capability.value} failed", exc)

    def lane_ended(self, lane: asyncio.Task[None]) -> None:
        """A lane's done-callback: a lane that dies of a bug stops the run, loudly."""
        if lane.cancelled():
            return
        error = lane.exception()
        if error is None or isinstance(error, Interrupted) or self.shutdown.stopping:
            return
        logger.error("worker %s: %s crashed", self.settings.name, lane.get_name(), exc_info=error)
        if self.poller.failure is None:
            self.poller.failure = error
        self.shutdown.request()

    def is_idle(self, index: int) -> bool:
        """Whether lane ``index`` holds no task (safe to cancel at once when stopping)."""
        return self.current[index] is None

    async def close(self) -> None:
        """Close the poll stream."""
        await self.poller.close()

    # --- the chain ------------------------------------------------------------------------

    def _run_in(self, function: Any, wants_context: bool) -> Next:
        """Run a plain function in a thread; if the wait for it is cancelled (a time limit,
        a stop) once it has started, remember the thread: Python cannot stop it."""
        threads, stragglers = self.threads, self.stragglers
        assert threads is not None
        loop = asyncio.get_running_loop()

        async def call(invocation: Invocation) -> Any:
            if wants_context:
                future = threads.submit(function, invocation.args, invocation.context)
            else:
                future = threads.submit(function, invocation.args)
            try:
                return await asyncio.wrap_future(future, loop=loop)
            except asyncio.CancelledError:
                if not future.cancel() and not future.done():
                    stragglers[invocation.task.id] = future
                raise

        return call

    # --- lanes ----------------------------------------------------------------------------

    async def lane(self, index: int) -> None:
        """Poll when free, run, ack; until the worker stops.

        The common case (an ``async`` handler and no middleware but the default
        retry policy) is inlined here: one coroutine frame per lane, not per task.
        """
        settings, live, shutdown, turn, poller = (
            self.settings, self.live, self.shutdown, self.turn, self.poller,
        )  # fmt: skip
        resumed, current = live.resumed, self.current
        name, routes = settings.name, self.routes
        function: Any = None
        decode: Any = None
        wants_context = fast = False
        call: Next | None = None
        policy = settings.policy
        if self.single is not None:
            function, decode, wants_context, fast, call, policy = self.single
        ack = self.hooks.ack if self.acks else None
        ran = 0
        while not shutdown.stopping:
            if live.paused:
                await resumed.wait()
                continue
            if turn.busy:
                await turn.wait()
                continue
            turn.busy = True
            try:
                try:
                    task = await poller.iterator.__anext__()
                except Exception as exc:  # StopAsyncIteration included
                    task = await poller.after(exc)
                else:
                    if task is None:
                        task = await poller.after(None)
            finally:
                turn.busy = False
                if turn.waiters:
                    turn.wake()
            if task is None:
                continue  # stopping or paused: the loop's checks say which
            if shutdown.stopping or live.paused:
                # Claimed as a stop or pause came (a poll already under way finishes its
                # claim): hand it back unrun; Release keeps its place in line.
                await self._ack(task, Release("the worker is stopping or paused"), None)
                continue
            current[index] = task
            shutdown.in_flight += 1
            try:
                if routes is not None:
                    # The router's whole cost: one dict lookup and one unpack per task.
                    entry = routes.get(task.name)
                    if entry is None:
                        await self._unknown(task)
                        continue
                    function, decode, wants_context, fast, call, policy = entry
                if not fast:
                    assert call is not None
                    await self._run(task, decode, call, policy)
                else:
                    acked = False
                    try:
                        try:
                            args = decode(task.args)
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
                            await self._failed(task, exc, policy)
                        else:
                            acked = True
                            if result is None:
                                live.succeeded += 1
                                if ack is not None:
                                    try:
                                        await ack(task, _DONE_EMPTY)
                                    except Exception as exc:
                                        await self._ack_failed(task, _DONE_EMPTY, exc)
                                if live.listeners:
                                    live.emit(Success(name, task, None))
                            else:
                                await self._finish(task, result)
                    except (asyncio.CancelledError, Interrupted):
                        if not acked:
                            await self._ack(task, Release(_SHUT_DOWN), None)
                        raise
            finally:
                current[index] = None
                shutdown.in_flight -= 1
                settled = poller.settled
                if settled is not None and not settled.done():
                    settled.set_result(None)
            ran += 1
            if not ran & 255:
                # A lane whose handlers never await would otherwise hold the loop for the
                # whole backlog: let heartbeats, signals and other lanes in now and then.
                await asyncio.sleep(0)

    async def _unknown(self, task: Task[bytes]) -> None:
        """No route has the task's name: kill that task (retrying cannot help), carry on."""
        assert self.routes is not None
        message = unknown_name(task.name, (n for n in self.routes if n is not None))
        await self._ack(task, Kill(message), UnknownTask(message))

    async def _run(self, task: Task[bytes], decode: Any, call: Next, policy: RetryPolicy) -> None:
        """The general path: context, middleware chain, plain functions in threads."""
        settings = self.settings
        acked = False
        try:
            try:
                args = decode(task.args)
                context = TaskContext(
                    task.id, task.attempt, task.max_attempts,
                    task.queue, task.meta, settings.name, task.name,
                )  # fmt: skip
                result = await call(Invocation(task, args, context))
            except _HANDLER_ERRORS as exc:
                acked = True
                await self._failed(task, exc, policy)
            else:
                acked = True
                await self._finish(task, result)
            if self.stragglers:
                await self._outlive(task)
        except (asyncio.CancelledError, Interrupted):
            if not acked:
                await self._ack(task, Release(_SHUT_DOWN), None)
            raise

    async def _outlive(self, task: Task[bytes]) -> None:
        """The attempt ended while its thread runs on: keep this lane (its slot) until the
        thread returns, so the worker never runs more handlers at once than ``concurrency``
        and the next task does not queue for a thread behind it. Its result is dropped."""
        thread = self.stragglers.pop(task.id, None)
        if thread is None or thread.done():
            return
        logger.warning(
            "worker %s: task %s's handler is still running in its thread, which Python"
            " cannot stop; its slot stays taken until it returns (its result will be dropped)",
            self.settings.name, task.id,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The attempt's fate was settled at the deadline: whatever the thread ends with is moot.
        await asyncio.wait([asyncio.wrap_future(thread, loop=loop)])
        logger.info(
            "worker %s: the thread of task %s returned %.1f s after its attempt ended",
            self.settings.name, task.id, loop.time() - started,
        )  # fmt: skip

    async def _failed(self, task: Task[bytes], error: BaseException, policy: RetryPolicy) -> None:
        if isinstance(error, PayloadError):
            # The args do not decode to what the handler takes: retrying cannot fix that.
            await self._ack(task, Kill(f"payload cannot be decoded: {error}"), error)
        else:
            outcome = policy.outcome(error, task.attempt, self.settings.clock)
            await self._ack(task, outcome, error)

    async def _finish(self, task: Task[bytes], result: Any) -> None:
        """Ack what a handler (or middleware) returned: an outcome, or a value to store."""
        if type(result) in _OUTCOMES:
            error = None if type(result) is Done else RuntimeError(result.error)
            await self._ack(task, result, error)
            return
        if result is None:
            outcome = _DONE_EMPTY
        else:
            try:
                outcome = Done(self.backend.codec.encode(result))
            except PayloadError as exc:
                message = f"the handler's result cannot be stored: {exc}"
                await self._ack(task, Kill(message), exc)
                return
        live = self.live
        live.succeeded += 1
        if self.acks:
            try:
                await self.hooks.ack(task, outcome)
            except Exception as exc:
                await self._ack_failed(task, outcome, exc)
        if live.listeners:
            live.emit(Success(live.name, task, result))

    async def _ack_failed(self, task: Task[bytes], outcome: Outcome, error: Exception) -> None:
        """An ack raised: a stale lease is final; anything else is retried a few times."""
        live = self.live
        for attempt in range(1, _ACK_TRIES + 1):
            if isinstance(error, StaleLease):
                # The task was resumed and handed to another worker: its result is theirs.
                logger.warning("worker %s: %s", live.name, error)
                return
            if attempt == _ACK_TRIES:
                break
            live.backend_error(f"ack of task {task.id} failed", error)
            await asyncio.sleep(full_jitter(attempt, self.settings.error_backoff, 1.0))
            try:
                await self.hooks.ack(task, outcome)
                return
            except Exception as exc:
                error = exc
        # Given up: the task stays claimed until this worker's leases lapse (it stops or
        # dies), then resume_abandoned brings it back.
        live.backend_error(f"ack of task {task.id} failed {_ACK_TRIES} times, giving up", error)

    async def _ack(self, task: Task[bytes], outcome: Outcome, error: BaseException | None) -> None:
        live = self.live
        if type(outcome) is not Done and type(outcome) is not Release:
            live.failed += 1
            if type(outcome) is Retry and task.attempt < task.max_attempts:
                fate = f"retry at {outcome.run_at:%H:%M:%S.%f}"
                if self.horizon is not None:
                    self.horizon.retry_at(outcome.run_at.timestamp())
            else:
                fate = "killed"
            # A RetryAfter is the handler's own plan, not a fault: keep it out of warnings.
            level = logging.INFO if isinstance(error, RetryAfter) else logging.WARNING
            logger.log(
                level,
                "worker %s: task %s attempt %d/%d failed (%s): %s",
                live.name, task.id, task.attempt, task.max_attempts, fate,
                outcome.error,  # type: ignore[union-attr]
            )  # fmt: skip
        if self.acks:
            try:
                await self.hooks.ack(task, outcome)
            except Exception as exc:
                await self._ack_failed(task, outcome, exc)
        if live.listeners and error is not None:
            live.emit(Error(live.name, error, task, outcome))


# A handler that calls sys.exit() or raises KeyboardInterrupt fails its own task;
# it must not take a lane (and the event loop) down with it. Real signals reach
# the worker through its own handlers, not as exceptions from handler code.
_HANDLER_ERRORS = (Exception, SystemExit, KeyboardInterrupt)

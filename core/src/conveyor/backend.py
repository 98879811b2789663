"""The ``Backend`` facade: typed methods over one backend plugin's resolved hooks."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pluggy

from conveyor import hookspecs
from conveyor.capability import Capability
from conveyor.clock import SYSTEM_CLOCK, Clock, at
from conveyor.codec import Codec, JsonCodec
from conveyor.context import WorkerInfo
from conveyor.errors import ConveyorError, PayloadError, TaskNotFound, UnsupportedCapability
from conveyor.expose import Filter, QueueInfo, RunningWorker, Statistic
from conveyor.hooks import Hooks
from conveyor.markers import PROJECT
from conveyor.middleware import Middleware
from conveyor.plugin import HOOK_NAMES, capabilities_of, implemented_hooks
from conveyor.rules.config import BackendConfig, check_queue_name, config_of
from conveyor.rules.record import build as _build
from conveyor.status import Status
from conveyor.task import DEFAULT_MAX_ATTEMPTS, Task, TaskResult, utc
from conveyor.task_id import TaskId, TaskIdLike

__all__ = ["Backend", "PUSH_CHUNK", "MAX_NAME"]

PUSH_CHUNK = 1000
"""How many tasks ``push_stream`` hands the backend at a time."""

MAX_NAME = 200
"""The longest task name (``Task.name``) a push accepts."""


class Backend:
    """An opened backend: what applications, workers and tests call.

    Built by ``conveyor.open``; wraps one plugin object in a plugin manager of
    its own (with any observers) and resolves each hook once, here. Methods
    that need a capability the plugin lacks raise ``UnsupportedCapability``.
    Use as ``async with conveyor.open(url) as backend:`` to close it after.
    """

    def __init__(
        self,
        plugin: object,
        *,
        name: str,
        codec: Codec | None = None,
        observers: Sequence[object] = (),
        args_type: Any = None,
        providers: Callable[[Capability], Sequence[str]] | None = None,
    ) -> None:
        self.name = name
        self.plugin = plugin
        # The plugin's BackendConfig (if it has one) is all the facade reads of it.
        self.config: BackendConfig | None = config_of(plugin)
        configured = None if self.config is None else self.config.codec
        self.codec: Codec = codec if codec is not None else configured or JsonCodec()
        self.args_type = args_type
        self._observers = tuple(observers)
        self._providers = providers
        implemented = implemented_hooks(plugin)
        unknown = implemented - HOOK_NAMES
        if unknown:
            raise ConveyorError(
                f"backend {name!r} implements hooks conveyor does not define:"
                f" {', '.join(sorted(unknown))}; check their names against conveyor.hookspecs"
            )
        if "poll" not in implemented:
            raise ConveyorError(f"backend {name!r} does not implement the required 'poll' hook")
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(hookspecs)
        manager.register(plugin, name=f"backend:{name}")
        for index, observer in enumerate(self._observers):
            manager.register(observer, name=f"observer:{index}:{type(observer).__name__}")
        self.capabilities: frozenset[Capability] = capabilities_of(implemented)
        # Pushes are stamped on the backend's own clock, so "now" means the same
        # instant to the facade and to the store (a ManualClock in tests).
        self.clock: Clock = SYSTEM_CLOCK if self.config is None else self.config.clock
        self.lease_seconds: float | None = (
            None if self.config is None else self.config.lease_seconds
        )
        self.hooks = Hooks(manager, implemented, self._unsupported)
        self._closed = False

    # --- capabilities ---------------------------------------------------------

    def supports(self, capability: Capability | str) -> bool:
        """Whether this backend has ``capability``."""
        return Capability.parse(capability) in self.capabilities

    def require(self, *capabilities: Capability | str) -> None:
        """Raise ``UnsupportedCapability`` for the first of ``capabilities`` it lacks."""
        for capability in capabilities:
            cap = Capability.parse(capability)
            if cap not in self.capabilities:
                raise self._unsupported(cap)

    def _unsupported(self, capability: Capability) -> UnsupportedCapability:
        providers: Sequence[str] = ()
        if self._providers is not None:
            providers = self._providers(capability)
        return UnsupportedCapability(self.name, capability.value, providers)

    @property
    def queue(self) -> str:
        """The default queue: ``get_queue()`` where supported, else ``"default"``."""
        if Capability.GET_QUEUE in self.capabilities:
            return self.hooks.get_queue()
        return "default"

    def with_args_type(self, args_type: Any) -> Backend:
        """The same backend, checking each ``push`` payload against ``args_type``."""
        clone = Backend.__new__(Backend)
        clone.__dict__.update(self.__dict__)
        clone.args_type = args_type
        return clone

    def now(self) -> datetime:
        """The backend clock's current time, as an aware UTC datetime."""
        return at(self.clock.time())

    # --- TaskSink -------------------------------------------------------------

    async def push(
        self,
        args: Any,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> TaskId:
        """Store one task and return its id.

        ``delay`` (a timedelta or seconds) or ``run_at`` (an aware datetime), not
        both, hold it back; higher ``priority`` runs first; ``max_attempts``
        defaults to 5; ``name`` is the task's registered name (``Task.name``).
        ``PayloadError`` if ``args`` cannot be encoded.
        """
        task = self._new_task(args, queue, run_at, delay, priority, max_attempts, meta, name, False)
        ids = await self.hooks.push([task])
        return ids[0]

    async def push_weak(
        self,
        args: Any,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> TaskId:
        """Like ``push`` for a payload of any type, bypassing ``args_type`` (WeakTaskSink)."""
        task = self._new_task(args, queue, run_at, delay, priority, max_attempts, meta, name, True)
        ids = await self.hooks.push_weak([task])
        return ids[0]

    async def push_many(
        self,
        items: Iterable[Any],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> list[TaskId]:
        """Store many tasks at once, all or none: every payload is encoded before any is stored.

        An item that is a ``Task`` keeps its own queue, run_at, priority,
        max_attempts, meta and name; other items get the keyword options.
        """
        if Capability.PUSH not in self.capabilities:
            raise self._unsupported(Capability.PUSH)
        items = list(items)
        if not items:
            return []
        # The options are checked, and "now" read, once for the batch (on its first
        # plain item, after that item's payload, so errors come in the order they
        # would one by one); each item then costs its encoding and a record.
        ids = TaskId._many(len(items))
        encode, pending, fresh = self._encode, Status.PENDING, _build
        options: tuple[str, datetime, int, int, Mapping[str, Any] | None, str | None] | None
        options = None
        tasks: list[Task[bytes]] = []
        for task_id, item in zip(ids, items, strict=True):
            if isinstance(item, Task):
                tasks.append(self._from_task(item, task_id))
                continue
            data = encode(item, False)
            if options is None:
                options = self._options(queue, run_at, delay, priority, max_attempts, meta, name)
            where, when, rank, attempts, extra, label = options
            record = fresh(
                task_id, data, where, pending, 0, attempts, when, rank, None, None, None,
                None, None, dict(extra) if extra else {}, label,
            )  # fmt: skip
            tasks.append(record)
        return list(await self.hooks.push(tasks))

    async def push_stream(
        self, items: Iterable[Any] | AsyncIterable[Any], *, chunk: int = PUSH_CHUNK, **options: Any
    ) -> list[TaskId]:
        """Push from a (possibly endless, possibly async) iterable in chunks; return the ids.

        Each chunk is all-or-nothing; chunks already stored stay stored if a
        later item fails to encode.
        """
        ids: list[TaskId] = []
        batch: list[Any] = []
        if isinstance(items, AsyncIterable):
            async for item in items:
                batch.append(item)
                if len(batch) >= chunk:
                    ids += await self.push_many(batch, **options)
                    batch = []
        else:
            for item in items:
                batch.append(item)
                if len(batch) >= chunk:
                    ids += await self.push_many(batch, **options)
                    batch = []
        if batch:
            ids += await self.push_many(batch, **options)
        return ids

    def _new_task(
        self,
        args: Any,
        queue: str | None,
        run_at: datetime | None,
        delay: timedelta | float | None,
        priority: int,
        max_attempts: int | None,
        meta: Mapping[str, Any] | None,
        name: str | None,
        weak: bool,
        task_id: TaskId | None = None,
    ) -> Task[bytes]:
        data = self._encode(args, weak)
        queue, when, priority, attempts, meta, name = self._options(
            queue, run_at, delay, priority, max_attempts, meta, name
        )
        # The fields were checked just above: the record is built without Task's own
        # __init__ (conveyor.rules.build, the trusted constructor backends use too).
        return _build(
            TaskId.new() if task_id is None else task_id, data, queue, Status.PENDING, 0,
            attempts, when, priority, None, None, None, None, None,
            dict(meta) if meta else {}, name,
        )  # fmt: skip

    def _encode(self, args: Any, weak: bool) -> bytes:
        """The payload's compact form, checked against ``args_type`` unless ``weak``."""
        data = self.codec.encode(args)
        if self.args_type is not None and not weak:
            self.codec.decode(data, self.args_type)
        return data

    def _options(
        self,
        queue: str | None,
        run_at: datetime | None,
        delay: timedelta | float | None,
        priority: int,
        max_attempts: int | None,
        meta: Mapping[str, Any] | None,
        name: str | None,
    ) -> tuple[str, datetime, int, int, Mapping[str, Any] | None, str | None]:
        """A push's options checked: (queue, run_at, priority, max_attempts, meta, name)."""
        if delay is not None:
            if run_at is not None:
                raise ValueError("pass run_at or delay, not both")
            seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
            if not seconds >= 0:
                raise ValueError(f"delay must be zero or more seconds, not {delay!r}")
            when = self.now() + timedelta(seconds=seconds)
        elif run_at is not None:
            when = utc(run_at)
        else:
            when = self.now()
        attempts = DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts
        if type(attempts) is not int or attempts < 1:
            raise ValueError(f"max_attempts must be a whole number of at least 1, not {attempts!r}")
        if type(priority) is not int:
            raise ValueError(f"priority must be a whole number, not {priority!r}")
        if meta:
            self.codec.encode(dict(meta))  # refuse what the store could not write back
        if name is not None and (type(name) is not str or not name or len(name) > MAX_NAME):
            raise ValueError(
                f"a task name must be a non-empty string of at most {MAX_NAME} characters,"
                f" not {name!r:.80}"
            )
        if queue is None:
            queue = self.queue
        else:
            check_queue_name(queue)
        return queue, when, priority, attempts, meta, name

    def _from_task(self, task: Task[Any], task_id: TaskId | None = None) -> Task[bytes]:
        return self._new_task(
            task.args,
            task.queue,
            task.run_at,
            None,
            task.priority,
            task.max_attempts,
            task.meta,
            task.name,
            False,
            task_id,
        )

    # --- task management ------------------------------------------------------

    async def fetch_by_id(self, task_id: TaskIdLike, as_type: Any = Any) -> Task[Any] | None:
        """The task with that id (args and result decoded), or ``None``."""
        task = await self.hooks.fetch_by_id(TaskId.parse(task_id))
        return None if task is None else self.decode_task(task, as_type)

    async def update(self, task: Task[Any]) -> None:
        """Overwrite the stored task with ``task`` (args and result re-encoded)."""
        result = None if task.result is None else self.codec.encode(task.result)
        await self.hooks.update(task.with_args(self.codec.encode(task.args), result))

    async def reschedule(
        self,
        task: Task[Any] | TaskIdLike,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
    ) -> None:
        """Run the task again later: at ``run_at``, after ``delay``, or now.

        Given a ``Task`` that a worker holds, its lease token is checked; given an
        id, the stored task is rescheduled whoever holds it (an operator's action).
        """
        if isinstance(task, Task):
            target: Task[Any] = task
        else:
            found = await self.hooks.fetch_by_id(TaskId.parse(task))
            if found is None:
                raise TaskNotFound(f"no task {task} in backend {self.name!r}")
            target = attrs.evolve(found, lease_token=None)
        if run_at is not None and delay is not None:
            raise ValueError("pass run_at or delay, not both")
        if delay is not None:
            seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
            when = self.now() + timedelta(seconds=seconds)
        else:
            when = utc(run_at) if run_at is not None else self.now()
        args = target.args if isinstance(target.args, bytes) else self.codec.encode(target.args)
        await self.hooks.reschedule(target.with_args(args, target.result), when)

    async def vacuum(self) -> int:
        """Delete finished (``DONE``, ``KILLED``) tasks; return how many."""
        return await self.hooks.vacuum()

    async def resume_by_id(self, task_id: TaskIdLike) -> bool:
        """Make a failed, killed or stuck task run again; ``False`` if there was nothing to do."""
        return await self.hooks.resume_by_id(TaskId.parse(task_id))

    async def resume_abandoned(self) -> int:
        """Put back tasks whose workers' leases expired; return how many."""
        return await self.hooks.resume_abandoned()

    async def register_worker(self, worker: WorkerInfo) -> None:
        """Record a worker so listings show it."""
        await self.hooks.register_worker(worker)

    # --- Expose -----------------------------------------------------------------

    async def list_tasks(
        self, queue: str | None = None, filter: Filter | None = None, **filter_fields: Any
    ) -> list[Task[Any]]:
        """A page of one queue's tasks (default: this backend's queue), decoded."""
        page = filter if filter is not None else Filter(**filter_fields)
        tasks = await self.hooks.list_tasks(queue or self.queue, page)
        return [self.decode_task(t) for t in tasks]

    async def list_all_tasks(
        self, filter: Filter | None = None, **filter_fields: Any
    ) -> list[Task[Any]]:
        """A page of every queue's tasks, decoded."""
        page = filter if filter is not None else Filter(**filter_fields)
        return [self.decode_task(t) for t in await self.hooks.list_all_tasks(page)]

    async def list_queues(self) -> list[QueueInfo]:
        """Every queue with its statistics."""
        return list(await self.hooks.list_queues())

    async def list_workers(self, queue: str | None = None) -> list[RunningWorker]:
        """Registered workers of ``queue``, or of all queues."""
        return list(await self.hooks.list_workers(queue))

    async def metrics(self, queue: str | None = None) -> list[Statistic]:
        """Statistics of ``queue``, or of the whole store."""
        return list(await self.hooks.metrics(queue))

    # --- WaitForCompletion --------------------------------------------------------

    async def wait_for(
        self, task_ids: Iterable[TaskIdLike], *, timeout: float | None = None, as_type: Any = Any
    ) -> AsyncIterator[TaskResult[Any]]:
        """Yield each task's result once, in the order they finish."""
        ids = [TaskId.parse(i) for i in task_ids]
        async for result in self.hooks.wait_for(ids, timeout):
            yield self.decode_result(result, as_type)

    async def wait_one(
        self, task_id: TaskIdLike, *, timeout: float | None = None, as_type: Any = Any
    ) -> TaskResult[Any]:
        """Wait for one task and return its result."""
        async for result in self.wait_for([task_id], timeout=timeout, as_type=as_type):
            return result
        raise ConveyorError(f"backend {self.name!r} ended wait_for without reporting {task_id}")

    async def check_status(
        self, task_ids: Iterable[TaskIdLike], *, as_type: Any = Any
    ) -> list[TaskResult[Any]]:
        """Results of the given tasks that have finished, without waiting."""
        ids = [TaskId.parse(i) for i in task_ids]
        return [self.decode_result(r, as_type) for r in await self.hooks.check_status(ids)]

    # --- ConfigExt, MakeShared ---------------------------------------------------

    def get_queue(self) -> str:
        """The backend's queue name."""
        return self.hooks.get_queue()

    def make_shared(self, queue: str) -> Backend:
        """Another backend for ``queue`` over the same store and connection."""
        check_queue_name(queue)
        plugin = self.hooks.make_shared(queue)
        return Backend(
            plugin,
            name=self.name,
            codec=self.codec,
            observers=self._observers,
            args_type=None,
            providers=self._providers,
        )

    # --- Migrate ------------------------------------------------------------------

    async def migrate(self, *, apply: bool = True) -> str:
        """Bring the store's schema up to date (``apply``), or only say how.

        Returns the SQL run (or to run); '' when the schema is current.
        """
        return await self.hooks.migrate(apply)

    # --- the Backend trait, for workers ------------------------------------------

    def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        """The stream of tasks claimed for ``worker`` (compact form)."""
        return self.hooks.poll(worker)

    async def heartbeat(self, worker: WorkerInfo) -> None:
        """Extend ``worker``'s leases and registration."""
        await self.hooks.heartbeat(worker)

    def middleware(self) -> Sequence[Middleware]:
        """The backend's own middleware."""
        return self.hooks.middleware()

    # --- decoding ------------------------------------------------------------------

    def decode_task(self, task: Task[bytes], as_type: Any = Any) -> Task[Any]:
        """``task`` with args and result decoded.

        With ``as_type=Any`` a payload the codec cannot read is left as bytes
        (listings never fail on foreign data); with a type it raises ``PayloadError``.
        """
        try:
            args = self.codec.decode(task.args, as_type)
        except PayloadError:
            if as_type is not Any:
                raise
            args = task.args
        return task.with_args(args, self._decode_result(task.result))

    def decode_result(self, result: TaskResult[bytes], as_type: Any = Any) -> TaskResult[Any]:
        """``result`` with its value decoded."""
        value = result.result
        if value is not None:
            value = (
                self.codec.decode(value, as_type)
                if as_type is not Any
                else self._decode_result(value)
            )
        return TaskResult(result.task_id, result.status, value, result.error)

    def _decode_result(self, value: Any) -> Any:
        if isinstance(value, bytes):
            try:
                return self.codec.decode(value)
            except PayloadError:
                return value
        return value

    # --- lifecycle -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close what the backend opened. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await self.hooks.close()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        caps = ", ".join(sorted(c.value for c in self.capabilities))
        return f"<Backend {self.name!r} queue={self.queue!r} capabilities=[{caps}]>"

"""The custom backend: a backend assembled from a user's own functions."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs

from conveyor import Backend, Capability, ConfigError, ConveyorError, Task, WorkerInfo
from conveyor.rules import BackendConfig
from conveyor.rules.authoring import Backoff, PollStrategy, assemble, poll_with, spec_parameters
from conveyor_custom.parts import PARTS, SYNC_ONLY, Runner, parts_of, unknown_part

__all__ = ["CustomBackend", "CustomConfig", "OPTIONS"]

OPTIONS = (
    "poll_strategy", "poll_interval", "poll_max_interval", "run_sync", "queue", "lease_seconds",
    "clock", "codec",
)  # fmt: skip
"""Config keys that are settings rather than parts."""

DEFAULT_MAX_INTERVAL = 5.0
"""The longest wait between empty fetches unless configured."""


@attrs.frozen
class CustomConfig(BackendConfig):
    """The parts (functions, sync or async; ``fetch`` required) and settings:
    ``poll_strategy``: a ``conveyor.poll_strategy`` strategy deciding when to fetch
    again after an empty fetch; without one, ``Backoff`` from ``poll_interval``
    doubling up to ``poll_max_interval`` (default: 5 s, or ``poll_interval`` if longer);
    ``run_sync``: ``thread`` (sync parts run on one thread of their own) or
    ``inline`` (on the event loop; only for functions that never block); and
    ``queue``, ``lease_seconds``, ``clock`` (``conveyor.rules.BackendConfig``),
    which tell the facade and the worker what the parts use."""

    fetch: Any = None
    push: Any = None
    push_weak: Any = None
    ack: Any = None
    heartbeat: Any = None
    middleware: Any = None
    close: Any = None
    fetch_by_id: Any = None
    update: Any = None
    reschedule: Any = None
    vacuum: Any = None
    resume_by_id: Any = None
    resume_abandoned: Any = None
    register_worker: Any = None
    list_tasks: Any = None
    list_all_tasks: Any = None
    list_queues: Any = None
    list_workers: Any = None
    metrics: Any = None
    wait_for: Any = None
    check_status: Any = None
    get_queue: Any = None
    make_shared: Any = None
    migrate: Any = None
    poll_strategy: Any = None
    poll_interval: float = 0.5
    poll_max_interval: float | None = None
    run_sync: str = "thread"


class CustomBackend:
    """The plugin object of one opened custom backend.

    It implements ``poll`` (built from ``fetch``), ``close``, and one hook per
    further part supplied, nothing else: its capabilities are the parts given,
    known once opened (``declared_capabilities = ()`` for the registry).
    """

    Config = CustomConfig
    declared_capabilities: tuple[Capability, ...] = ()

    def __init__(self, config: CustomConfig, *, runner: Runner | None = None) -> None:
        self.config = config
        self.parts = parts_of({name: getattr(config, name) for name in PARTS})
        self.strategy = _strategy(config)
        self.runner = runner if runner is not None else Runner(config.run_sync)
        self.runner.users += 1
        self._fetch = self.parts["fetch"]
        hooks: dict[str, Callable[..., Any]] = {
            name: self._hook(name, function)
            for name, function in self.parts.items()
            if name not in ("fetch", "close")
        }
        hooks["poll"] = self._poll
        hooks["close"] = self._close
        plugin = assemble("custom", hooks)
        for name in hooks:
            setattr(self, name, getattr(plugin, name))

    def _hook(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        runner = self.runner
        hook: Callable[..., Any]
        if name == "make_shared":

            def hook(*args: Any) -> Any:
                return self._shared(function(*args))

        elif name in SYNC_ONLY:
            hook = function
        elif name == "wait_for":

            def hook(*args: Any) -> Any:
                return runner.iterate(function, *args)

        else:

            async def hook(*args: Any) -> Any:
                return await runner.call(function, *args)

        def exact(*args: Any) -> Any:
            return hook(*args)

        exact.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for p in spec_parameters(name)
            ]
        )
        return exact

    def _shared(self, made: Any) -> object:
        """What the user's ``make_shared`` returned, as a plugin object."""
        if isinstance(made, Backend):
            return made.plugin
        if not isinstance(made, Mapping):
            raise ConfigError(
                "custom make_shared(queue) must return a mapping of parts (like the keyword"
                f" arguments of conveyor.open('custom', ...)) or a conveyor.Backend,"
                f" not {type(made).__name__}"
            )
        values = {option: getattr(self.config, option) for option in OPTIONS}
        for name, value in made.items():
            if name not in PARTS and name not in OPTIONS:
                raise unknown_part(str(name))
            values[name] = value
        return CustomBackend(CustomConfig(**values), runner=self.runner)

    async def _poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        async def fetch() -> Task[bytes] | None:
            task = await self.runner.call(self._fetch, worker)
            if task is not None and (
                not isinstance(task, Task) or not isinstance(task.args, bytes)
            ):
                raise ConveyorError(
                    "custom fetch must return a claimed conveyor.Task whose args are the"
                    f" codec's bytes, or None; it returned {task!r:.200}"
                )
            return task

        # After an empty fetch: report idle at once, then wait for the strategy's tick.
        stream = poll_with(fetch, self.strategy, worker)
        try:
            async for task in stream:
                yield task
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def _close(self) -> None:
        try:
            close = self.parts.get("close")
            if close is not None:
                await self.runner.call(close)
        finally:
            self.runner.users -= 1
            if self.runner.users <= 0:
                self.runner.shutdown()


def _strategy(config: CustomConfig) -> PollStrategy:
    """The configured poll strategy, or a ``Backoff`` from the interval settings."""
    if config.poll_strategy is not None:
        if not callable(getattr(config.poll_strategy, "ticks", None)):
            raise ConfigError(
                "custom poll_strategy must be a conveyor.poll_strategy strategy (Interval,"
                f" Backoff, Stream, Trigger, Race), not {type(config.poll_strategy).__name__}"
            )
        strategy: PollStrategy = config.poll_strategy
        return strategy
    if not config.poll_interval > 0:
        raise ConfigError(
            f"custom poll_interval must be more than 0 s, not {config.poll_interval!r}"
        )
    most = config.poll_max_interval
    if most is None:
        most = max(DEFAULT_MAX_INTERVAL, config.poll_interval)
    if not most >= config.poll_interval:
        raise ConfigError(
            f"custom poll_max_interval ({most!r}) must be at least"
            f" poll_interval ({config.poll_interval!r})"
        )
    return Backoff(initial=config.poll_interval, maximum=most)

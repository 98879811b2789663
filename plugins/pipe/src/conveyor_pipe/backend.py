"""The pipe backend: any (async) iterable fed into a backend that accepts pushes."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

import conveyor
from conveyor import Backend, Capability, ConfigError, Release, Task, WorkerInfo
from conveyor.rules import BackendConfig
from conveyor.rules.authoring import (
    DEFAULT_LEASE_SECONDS,
    HOOK_NAMES,
    assemble,
    implemented_hooks,
    spec_parameters,
)
from conveyor_pipe.feeder import Feeder, PipeSourceError, as_iterator

__all__ = ["PipeBackend", "PipeConfig", "ON_SOURCE_ERROR"]

ON_SOURCE_ERROR = ("keep", "stop")
"""``keep``: serve the inner backend on after a source error; ``stop``: end the poll stream,
so the worker takes no more tasks (a burst run returns)."""


@attrs.frozen
class PipeConfig:
    """``source``: an iterable or async iterable of payloads or ``conveyor.Task``;
    ``into``: the ``conveyor.Backend`` (or a URL to open) to push them into and
    serve from; ``read_ahead``: at most this many items pushed but not yet handed
    to a worker; ``on_source_error``: ``keep`` (default: serve the inner backend
    on) or ``stop`` (end the poll stream: the worker takes no more tasks);
    ``codec``: the ``codec=`` of ``conveyor.open``, handed to a backend opened
    from a URL (the pipe's codec is always its inner backend's)."""

    source: Any = None
    into: Any = None
    read_ahead: int = 16
    on_source_error: str = "keep"
    codec: Any = None


class PipeBackend:
    """The plugin object of one opened pipe.

    Its hooks are exactly the inner backend's (assembled per instance), with
    ``poll`` wrapped to feed the source in, so its capabilities are the inner
    backend's: known once opened, hence ``declared_capabilities = ()`` for the
    registry. ``pushed``, ``rejected`` and ``error`` report on the source.
    """

    Config = PipeConfig
    declared_capabilities: tuple[Capability, ...] = ()

    def __init__(self, config: PipeConfig) -> None:
        into = _inner(config.into, config.codec)
        if config.source is None:
            raise ConfigError(
                "pipe needs a source: conveyor.open('pipe', source=<iterable or async iterable"
                " of payloads>, into=<backend>)"
            )
        try:
            source = as_iterator(config.source)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None
        if type(config.read_ahead) is not int or config.read_ahead < 1:
            raise ConfigError(
                f"pipe read_ahead must be a whole number of at least 1, not {config.read_ahead!r}"
            )
        if config.on_source_error not in ON_SOURCE_ERROR:
            raise ConfigError(
                f"pipe on_source_error must be 'keep' or 'stop', not {config.on_source_error!r}"
            )
        if not into.supports(Capability.PUSH):
            others = conveyor.registry.providers(Capability.PUSH)
            raise ConfigError(
                f"pipe cannot feed backend {into.name!r}: it does not accept pushes (no 'push'"
                f" capability). Backends that do: {', '.join(others) or 'none installed'}"
            )
        self.into = into
        self.settings = config
        # What the facade and the worker read: the inner backend's queue, lease, clock, codec.
        self.config = BackendConfig(
            queue=into.queue,
            lease_seconds=into.lease_seconds or DEFAULT_LEASE_SECONDS,
            clock=into.clock,
            codec=into.codec,
        )
        self.feeder = Feeder(source, into, config.read_ahead)
        hooks: dict[str, Callable[..., Any]] = {
            name: _delegate(name, getattr(into.hooks, name))
            for name in implemented_hooks(into.plugin) & HOOK_NAMES
        }
        hooks["poll"] = self._poll
        hooks["close"] = self._close
        plugin = assemble(f"pipe into {into.name}", hooks)
        for name in hooks:
            setattr(self, name, getattr(plugin, name))

    @property
    def pushed(self) -> int:
        """How many source items are in the inner backend."""
        return self.feeder.pushed

    @property
    def rejected(self) -> int:
        """How many source items were skipped because they could not be encoded."""
        return self.feeder.rejected

    @property
    def error(self) -> PipeSourceError | None:
        """Why the pipe stopped reading its source early, if it did."""
        return self.feeder.error

    @property
    def exhausted(self) -> bool:
        """True once the pipe reads no more from its source (ended, failed or closed)."""
        return self.feeder.finished

    async def _poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        # Idle (None) is passed on only once the source is done: while it may
        # still produce, "nothing ready" would be a lie (and end a burst run).
        feeder = self.feeder
        feeder.start()
        inner = self.into.hooks.poll(worker)
        try:
            async for task in inner:
                if feeder.error is not None and self.settings.on_source_error == "stop":
                    if task is not None:  # claimed but not handed out: give it back unrun
                        await self._release(task)
                    return
                if task is not None:
                    feeder.delivered()
                    yield task
                    continue
                feeder.drained()
                seen = feeder.pushed
                if not feeder.finished:
                    await asyncio.sleep(0)  # let a feeder that is about to end do so
                # The inner None stands only if the feeder pushed nothing after it.
                if feeder.finished and feeder.pushed == seen:
                    yield None
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _release(self, task: Task[bytes]) -> None:
        if self.into.supports(Capability.ACK):
            await self.into.hooks.ack(task, Release("the pipe stopped on a source error"))

    async def _close(self) -> None:
        await self.feeder.aclose()
        await self.into.aclose()


def _inner(into: Any, codec: Any) -> Backend:
    if into is None:
        raise ConfigError(
            "pipe needs a backend to feed: conveyor.open('pipe', source=..., into=<an opened"
            " conveyor.Backend or a URL such as 'json://tasks.json'>)"
        )
    if isinstance(into, str):
        return conveyor.open(into, codec=codec)
    if not isinstance(into, Backend):
        raise ConfigError(
            f"pipe into= must be an opened conveyor.Backend or a backend URL,"
            f" not {type(into).__name__}"
        )
    if codec is not None and codec is not into.codec:
        raise ConfigError(
            f"pipe was given codec {getattr(codec, 'name', codec)!r} but into= already encodes"
            f" with {into.codec.name!r}: pass the codec once, to the backend the pipe feeds"
            " (conveyor.open(url, codec=...)), or give into= as a URL"
        )
    return into


def _delegate(name: str, target: Callable[..., Any]) -> Callable[..., Any]:
    """``target`` under the hook's own parameter names, as ``assemble`` checks them."""

    def delegate(*args: Any) -> Any:
        return target(*args)

    delegate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for p in spec_parameters(name)
        ]
    )
    delegate.__name__ = name
    return delegate

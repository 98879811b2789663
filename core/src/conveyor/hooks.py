"""A backend's hooks, resolved once when it is opened.

Where the backend's own implementation is the only one for a hook, the
resolved callable *is* that implementation: no pluggy dispatch per call.
Where observers wrap a hook, calls go through pluggy so the wrappers run.
A hook the backend lacks resolves to a callable raising ``UnsupportedCapability``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import pluggy

from conveyor.capability import Capability
from conveyor.context import WorkerInfo
from conveyor.errors import UnsupportedCapability
from conveyor.expose import Filter, QueueInfo, RunningWorker, Statistic
from conveyor.middleware import Middleware
from conveyor.outcome import Outcome
from conveyor.plugin import HOOK_NAMES, spec_parameters
from conveyor.task import Task, TaskResult
from conveyor.task_id import TaskId

__all__ = ["Hooks"]


async def _nothing(*_: Any) -> None:
    return None


def _no_middleware() -> Sequence[Middleware]:
    return ()


class Hooks:
    """The resolved hook callables of one backend, positional arguments in spec order."""

    poll: Callable[[WorkerInfo], AsyncIterator[Task[bytes] | None]]
    heartbeat: Callable[[WorkerInfo], Awaitable[None]]
    middleware: Callable[[], Sequence[Middleware]]
    close: Callable[[], Awaitable[None]]
    ack: Callable[[Task[bytes], Outcome], Awaitable[None]]
    push: Callable[[Sequence[Task[bytes]]], Awaitable[Sequence[TaskId]]]
    push_weak: Callable[[Sequence[Task[bytes]]], Awaitable[Sequence[TaskId]]]
    fetch_by_id: Callable[[TaskId], Awaitable[Task[bytes] | None]]
    update: Callable[[Task[bytes]], Awaitable[None]]
    reschedule: Callable[[Task[bytes], datetime], Awaitable[None]]
    vacuum: Callable[[], Awaitable[int]]
    resume_by_id: Callable[[TaskId], Awaitable[bool]]
    resume_abandoned: Callable[[], Awaitable[int]]
    register_worker: Callable[[WorkerInfo], Awaitable[None]]
    list_tasks: Callable[[str, Filter], Awaitable[Sequence[Task[bytes]]]]
    list_all_tasks: Callable[[Filter], Awaitable[Sequence[Task[bytes]]]]
    list_queues: Callable[[], Awaitable[Sequence[QueueInfo]]]
    list_workers: Callable[[str | None], Awaitable[Sequence[RunningWorker]]]
    metrics: Callable[[str | None], Awaitable[Sequence[Statistic]]]
    wait_for: Callable[[Sequence[TaskId], float | None], AsyncIterator[TaskResult[bytes]]]
    check_status: Callable[[Sequence[TaskId]], Awaitable[Sequence[TaskResult[bytes]]]]
    get_queue: Callable[[], str]
    make_shared: Callable[[str], object]
    migrate: Callable[[bool], Awaitable[str]]

    def __init__(
        self,
        manager: pluggy.PluginManager,
        implemented: frozenset[str],
        unsupported: Callable[[Capability], UnsupportedCapability],
    ) -> None:
        direct = set()
        for name in HOOK_NAMES:
            if name in implemented:
                function, is_direct = _resolve(manager, name)
                if is_direct:
                    direct.add(name)
            elif name in ("heartbeat", "close"):
                function = _nothing
            elif name == "middleware":
                function = _no_middleware
            else:
                function = _raiser(unsupported, Capability(name))
            setattr(self, name, function)
        self.direct: frozenset[str] = frozenset(direct)
        """Hooks called straight on the plugin's method, with no pluggy dispatch."""


def _resolve(manager: pluggy.PluginManager, name: str) -> tuple[Callable[..., Any], bool]:
    caller = getattr(manager.hook, name)
    params = spec_parameters(name)
    impls = caller.get_hookimpls()
    only = impls[0] if len(impls) == 1 else None
    if only is not None and not (only.wrapper or only.hookwrapper) and only.argnames == params:
        return only.function, True

    def through_pluggy(*args: Any) -> Any:
        return caller(**dict(zip(params, args, strict=False)))

    through_pluggy.__name__ = name
    return through_pluggy, False


def _raiser(
    unsupported: Callable[[Capability], UnsupportedCapability], capability: Capability
) -> Callable[..., Any]:
    def missing(*_: Any) -> Any:
        raise unsupported(capability)

    missing.__name__ = capability.value
    return missing

"""Capability negotiation: a backend has exactly the capabilities whose hooks it implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import pytest

import conveyor
from conveyor import Backend, Capability, Task, TaskId, UnsupportedCapability, WorkerInfo, hookimpl
from conveyor.plugin import assemble


@attrs.frozen
class PartialConfig:
    queue: str = "default"


class Partial:
    """A backend with poll, push and fetch_by_id only."""

    Config = PartialConfig

    def __init__(self, config: PartialConfig | None = None) -> None:
        self.tasks: dict[TaskId, Task[bytes]] = {}

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        while True:
            yield None

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        self.tasks.update((t.id, t) for t in tasks)
        return [t.id for t in tasks]

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return self.tasks.get(task_id)


def partial_backend() -> Backend:
    return Backend(Partial(), name="partial", providers=conveyor.registry.providers)


def test_capabilities_are_the_implemented_hooks() -> None:
    backend = partial_backend()
    assert backend.capabilities == {Capability.PUSH, Capability.FETCH_BY_ID}
    assert backend.supports("push") and backend.supports(Capability.FETCH_BY_ID)
    assert not backend.supports(Capability.VACUUM)
    assert not backend.supports(Capability.EXPOSE)


async def test_what_it_has_works_through_the_facade() -> None:
    backend = partial_backend()
    task_id = await backend.push({"n": 1}, priority=3)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.args == {"n": 1} and task.priority == 3


async def test_calling_what_it_lacks_names_backend_capability_and_providers() -> None:
    backend = partial_backend()
    with pytest.raises(UnsupportedCapability) as info:
        await backend.vacuum()
    error = info.value
    assert error.backend == "partial" and error.capability == "vacuum"
    assert "memory" in error.providers
    assert "backend 'partial' does not support 'vacuum'" in str(error)
    with pytest.raises(UnsupportedCapability):
        await backend.list_tasks()
    with pytest.raises(UnsupportedCapability):
        backend.make_shared("other")


def test_require_raises_for_the_first_missing() -> None:
    backend = partial_backend()
    backend.require(Capability.PUSH, "fetch_by_id")
    with pytest.raises(UnsupportedCapability, match="wait_for"):
        backend.require(Capability.PUSH, Capability.WAIT_FOR)


def test_unknown_capability_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: ack, push"):
        partial_backend().supports("teleport")


def test_expose_is_derived_from_listings_metrics_and_push() -> None:
    memory = conveyor.open("memory://")
    assert memory.supports(Capability.EXPOSE)
    assert Capability.EXPOSE.derived and not Capability.PUSH.derived


def test_a_plugin_without_poll_is_refused() -> None:
    plugin = assemble("nopoll", {"vacuum": lambda: None})
    with pytest.raises(conveyor.ConveyorError, match="required 'poll' hook"):
        Backend(plugin, name="nopoll")


def test_assembled_plugin_has_exactly_the_given_hooks() -> None:
    async def poll(worker: WorkerInfo) -> AsyncIterator[None]:
        yield None

    async def vacuum() -> int:
        return 7

    backend = Backend(assemble("tiny", {"poll": poll, "vacuum": vacuum}), name="tiny")
    assert backend.capabilities == {Capability.VACUUM}


def test_assemble_checks_names_and_signatures() -> None:
    with pytest.raises(ValueError, match="'teleport' is not a conveyor hook"):
        assemble("x", {"teleport": lambda: None})
    with pytest.raises(TypeError, match=r"'vacuum' takes \(force\); expected \(\)"):
        assemble("x", {"vacuum": lambda force: 0})


async def test_lacking_heartbeat_and_middleware_default_to_nothing() -> None:
    backend = partial_backend()
    await backend.heartbeat(WorkerInfo("w", "default"))
    assert list(backend.middleware()) == []
    await backend.aclose()


def test_a_narrower_backend_is_possible_but_never_wider() -> None:
    plugin: Any = Partial()
    backend = Backend(plugin, name="partial")
    # Capabilities come from hooks alone: setting an attribute cannot add one.
    plugin.vacuum = lambda: 0
    assert Backend(plugin, name="partial").capabilities == backend.capabilities

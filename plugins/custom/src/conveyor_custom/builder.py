"""Building a custom backend part by part, with a report of what is missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import conveyor
from conveyor import Backend, Capability, Codec, ConfigError
from conveyor.rules.authoring import capabilities_of
from conveyor_custom.parts import REQUIRED, check_part, expected_signature

__all__ = ["BuildError", "CustomBackendBuilder"]


class BuildError(ConfigError):
    """``build()`` was called before every required part was given; ``missing`` names them."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        wanted = "; ".join(f".{name}(function) with {expected_signature(name)}" for name in missing)
        super().__init__(f"custom backend is missing required part(s): {wanted}")


class CustomBackendBuilder:
    """``CustomBackendBuilder().fetch(f).push(g).ack(h).build()`` -> an opened ``conveyor.Backend``.

    Each part is checked as it is given (name and signature); ``build`` reports
    the required parts still missing. The backend's capabilities are exactly
    the parts given besides ``fetch`` (see ``capabilities()``).
    """

    def __init__(self) -> None:
        self._parts: dict[str, Callable[..., Any]] = {}
        self._options: dict[str, Any] = {}
        self._codec: Codec | None = None

    def part(self, name: str, function: Callable[..., Any]) -> Self:
        """Set part ``name`` (``ConfigError`` naming it and its signature if it does not fit)."""
        check_part(name, function)
        self._parts[name] = function
        return self

    def fetch(self, function: Callable[..., Any]) -> Self:
        """Set the ``fetch`` part."""
        return self.part("fetch", function)

    def push(self, function: Callable[..., Any]) -> Self:
        """Set the ``push`` part."""
        return self.part("push", function)

    def push_weak(self, function: Callable[..., Any]) -> Self:
        """Set the ``push_weak`` part."""
        return self.part("push_weak", function)

    def ack(self, function: Callable[..., Any]) -> Self:
        """Set the ``ack`` part."""
        return self.part("ack", function)

    def heartbeat(self, function: Callable[..., Any]) -> Self:
        """Set the ``heartbeat`` part."""
        return self.part("heartbeat", function)

    def middleware(self, function: Callable[..., Any]) -> Self:
        """Set the ``middleware`` part."""
        return self.part("middleware", function)

    def close(self, function: Callable[..., Any]) -> Self:
        """Set the ``close`` part."""
        return self.part("close", function)

    def fetch_by_id(self, function: Callable[..., Any]) -> Self:
        """Set the ``fetch_by_id`` part."""
        return self.part("fetch_by_id", function)

    def update(self, function: Callable[..., Any]) -> Self:
        """Set the ``update`` part."""
        return self.part("update", function)

    def reschedule(self, function: Callable[..., Any]) -> Self:
        """Set the ``reschedule`` part."""
        return self.part("reschedule", function)

    def vacuum(self, function: Callable[..., Any]) -> Self:
        """Set the ``vacuum`` part."""
        return self.part("vacuum", function)

    def resume_by_id(self, function: Callable[..., Any]) -> Self:
        """Set the ``resume_by_id`` part."""
        return self.part("resume_by_id", function)

    def resume_abandoned(self, function: Callable[..., Any]) -> Self:
        """Set the ``resume_abandoned`` part."""
        return self.part("resume_abandoned", function)

    def register_worker(self, function: Callable[..., Any]) -> Self:
        """Set the ``register_worker`` part."""
        return self.part("register_worker", function)

    def list_tasks(self, function: Callable[..., Any]) -> Self:
        """Set the ``list_tasks`` part."""
        return self.part("list_tasks", function)

    def list_all_tasks(self, function: Callable[..., Any]) -> Self:
        """Set the ``list_all_tasks`` part."""
        return self.part("list_all_tasks", function)

    def list_queues(self, function: Callable[..., Any]) -> Self:
        """Set the ``list_queues`` part."""
        return self.part("list_queues", function)

    def list_workers(self, function: Callable[..., Any]) -> Self:
        """Set the ``list_workers`` part."""
        return self.part("list_workers", function)

    def metrics(self, function: Callable[..., Any]) -> Self:
        """Set the ``metrics`` part."""
        return self.part("metrics", function)

    def wait_for(self, function: Callable[..., Any]) -> Self:
        """Set the ``wait_for`` part."""
        return self.part("wait_for", function)

    def check_status(self, function: Callable[..., Any]) -> Self:
        """Set the ``check_status`` part."""
        return self.part("check_status", function)

    def get_queue(self, function: Callable[..., Any]) -> Self:
        """Set the ``get_queue`` part."""
        return self.part("get_queue", function)

    def make_shared(self, function: Callable[..., Any]) -> Self:
        """Set the ``make_shared`` part."""
        return self.part("make_shared", function)

    def codec(self, codec: Codec) -> Self:
        """Encode payloads with ``codec`` (default: ``conveyor.JsonCodec``)."""
        self._codec = codec
        return self

    def poll_interval(self, seconds: float, max_seconds: float | None = None) -> Self:
        """After an empty fetch wait ``seconds``, doubling up to ``max_seconds`` (or fixed)."""
        self._options["poll_interval"] = seconds
        self._options["poll_max_interval"] = seconds if max_seconds is None else max_seconds
        return self

    def poll_strategy(self, strategy: Any) -> Self:
        """Fetch again after an empty fetch on ``strategy``'s ticks (``conveyor.poll_strategy``)."""
        self._options["poll_strategy"] = strategy
        return self

    def run_sync(self, mode: str) -> Self:
        """Run sync parts on a thread of their own (``thread``) or on the loop (``inline``)."""
        self._options["run_sync"] = mode
        return self

    def missing(self) -> list[str]:
        """Required parts not given yet."""
        return [name for name in REQUIRED if name not in self._parts]

    def capabilities(self) -> frozenset[Capability]:
        """The capabilities the parts given so far make."""
        return capabilities_of(frozenset(self._parts) - {"fetch"})

    def build(self) -> Backend:
        """Open the backend; ``BuildError`` listing what is missing."""
        missing = self.missing()
        if missing:
            raise BuildError(missing)
        return conveyor.open("custom", codec=self._codec, **self._parts, **self._options)

"""conveyor: background-task backends as plugins.

``conveyor.open(url)`` opens an installed backend; ``Worker`` runs handlers
over it; ``App`` registers named tasks (``@app.task``) and runs them all;
``conveyor.hookspecs`` is the contract a backend plugin implements.
"""

from __future__ import annotations

from typing import Any

from conveyor.app import App, AppWorker, NamedTask
from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.clock import Clock, ManualClock, SystemClock
from conveyor.codec import Codec, JsonCodec
from conveyor.context import TaskContext, WorkerInfo
from conveyor.control import Abort, RetryAfter
from conveyor.errors import (
    BackendClosed,
    BackendUnavailable,
    ConfigError,
    ConveyorError,
    PayloadError,
    PluginLoadError,
    StaleLease,
    TaskNotFound,
    UnknownBackend,
    UnsupportedCapability,
)
from conveyor.expose import Filter, QueueInfo, RunningWorker, Statistic, StatType
from conveyor.markers import hookimpl, hookspec
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.registry import BackendInfo, Registry
from conveyor.status import InvalidTransition, Status
from conveyor.task import Task, TaskResult
from conveyor.task_id import TaskId
from conveyor.worker import Worker, WorkerState
from conveyor.worker.routes import Route, Routes

__all__ = [
    "Abort",
    "App",
    "AppWorker",
    "Backend",
    "BackendClosed",
    "BackendInfo",
    "BackendUnavailable",
    "Capability",
    "Clock",
    "Codec",
    "ConfigError",
    "ConveyorError",
    "Done",
    "Filter",
    "InvalidTransition",
    "JsonCodec",
    "Kill",
    "ManualClock",
    "NamedTask",
    "Outcome",
    "PayloadError",
    "PluginLoadError",
    "QueueInfo",
    "Registry",
    "Release",
    "Retry",
    "RetryAfter",
    "Route",
    "Routes",
    "RunningWorker",
    "StaleLease",
    "StatType",
    "Statistic",
    "Status",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskId",
    "TaskNotFound",
    "TaskResult",
    "UnknownBackend",
    "UnsupportedCapability",
    "Worker",
    "WorkerInfo",
    "WorkerState",
    "available",
    "hookimpl",
    "hookspec",
    "open",
    "registry",
]

registry = Registry()
"""The default registry: installed entry points plus registered observers."""


def open(target: str | None = None, /, **config: Any) -> Backend:  # noqa: A001 - the natural name
    """Open a backend by URL, by name with keyword configuration, or from configuration."""
    return registry.open(target, **config)


def available() -> list[BackendInfo]:
    """Every installed backend (name, distribution, version), without importing them."""
    return registry.available()

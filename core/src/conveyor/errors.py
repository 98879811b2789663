"""Every error conveyor raises derives from ``ConveyorError``; each says what to do."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConveyorError",
    "ConfigError",
    "UnknownBackend",
    "PluginLoadError",
    "UnsupportedCapability",
    "PayloadError",
    "StaleLease",
    "TaskNotFound",
    "BackendClosed",
    "BackendUnavailable",
]


class ConveyorError(Exception):
    """Base class of conveyor's errors."""


class ConfigError(ConveyorError, ValueError):
    """A backend URL or configuration value that cannot be used."""


class UnknownBackend(ConfigError, LookupError):
    """No installed backend has the name asked for."""

    def __init__(self, name: str, installed: Sequence[str], closest: str | None) -> None:
        self.name = name
        self.installed = list(installed)
        self.closest = closest
        hint = f" Did you mean {closest!r}?" if closest else ""
        listing = ", ".join(self.installed) if self.installed else "none"
        super().__init__(
            f"no backend named {name!r} is installed.{hint} Installed: {listing}."
            f" A third-party backend installs with: pip install conveyor-{name}"
        )


class PluginLoadError(ConveyorError, ImportError):
    """A backend plugin is installed but could not be imported."""

    def __init__(self, name: str, distribution: str, error: BaseException) -> None:
        self.name = name
        self.distribution = distribution
        self.error = error
        super().__init__(
            f"backend {name!r} from distribution {distribution!r} failed to load:"
            f" {type(error).__name__}: {error}. Reinstall or upgrade {distribution}."
        )


class UnsupportedCapability(ConveyorError, NotImplementedError):
    """The backend does not implement the hook a call needs."""

    def __init__(self, backend: str, capability: str, providers: Sequence[str]) -> None:
        self.backend = backend
        self.capability = capability
        self.providers = list(providers)
        where = ", ".join(self.providers) if self.providers else "no installed backend"
        super().__init__(
            f"backend {backend!r} does not support {capability!r};"
            f" installed backends that do: {where}"
        )


class PayloadError(ConveyorError, ValueError):
    """A payload that cannot be encoded or decoded; the message says which part and why."""


class StaleLease(ConveyorError):
    """An ack, retry or reschedule carried a lease token the task no longer has.

    The task was resumed and handed to another worker (or finished) meanwhile;
    the caller's view of it is out of date and its write was refused.
    """


class TaskNotFound(ConveyorError, LookupError):
    """No task with that id in this backend."""


class BackendClosed(ConveyorError):
    """The backend was closed; open a new one."""


class BackendUnavailable(ConveyorError):
    """The backend cannot be reached or used right now: a server that does not answer,
    a database that refuses the connection, a store whose disk failed.

    A backend raises it (with a one-line message naming the target and the fix)
    where retrying later may succeed. The CLI prints it as one line and exits
    non-zero; a running worker logs it and retries with backoff; a burst run
    stops and re-raises it.
    """

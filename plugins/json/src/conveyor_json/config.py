"""The json backend's configuration and how its URL maps onto it."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, unquote

import attrs

from conveyor import ConfigError
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.rules import BackendConfig

__all__ = ["JsonConfig", "config_from_url"]


def _clock(value: Any) -> Clock:
    if not callable(getattr(value, "time", None)):
        raise TypeError(f"clock must have a time() method returning epoch seconds, not {value!r}")
    return value  # type: ignore[no-any-return]


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be more than 0, not {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be 0 or more, not {value!r}")


def _path(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise ValueError("path must name the store file, e.g. json:///var/lib/app/tasks.json")


@attrs.frozen
class JsonConfig(BackendConfig):
    """Settings of a json store; every field but ``clock`` may come from the URL query.

    ``path``: the store file (its directory must exist). ``queue``: the default
    queue. ``lease_seconds``: how long a claim lasts without a heartbeat.
    ``fsync``: wait for the disk before ``push``/``ack`` return (turning it off
    trades power-loss safety for speed; a killed process still loses nothing).
    ``idle_wait``: how long an empty poll waits before reporting idle again.
    ``poll_interval``: how often a waiting poll or ``wait_for`` looks at the file
    for other processes' writes. ``compact_threshold``: superseded records
    tolerated before the journal is rewritten. ``clock``: keyword only, for tests.
    """

    path: str = attrs.field(validator=_path)
    queue: str = "default"
    lease_seconds: float = attrs.field(default=30.0, validator=_positive)
    fsync: bool = True
    idle_wait: float = attrs.field(default=1.0, validator=_not_negative)
    poll_interval: float = attrs.field(default=0.1, validator=_positive)
    compact_threshold: int = attrs.field(default=10_000, validator=_positive)
    clock: Any = attrs.field(default=SYSTEM_CLOCK, converter=_clock, kw_only=True)


def config_from_url(parts: SplitResult) -> dict[str, Any]:
    """``json:///abs/tasks.json`` and ``json://relative/tasks.json`` to ``{"path": ...}``."""
    path = unquote(parts.netloc + parts.path)
    if not path.strip("/"):
        raise ConfigError(
            "a json backend URL needs a file path: json:///absolute/path/tasks.json"
            " or json://relative/path/tasks.json"
        )
    return {"path": path}

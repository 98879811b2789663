"""The Redis backend's configuration, from a ``redis://`` URL and keyword arguments."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlunsplit

import attrs

from conveyor.clock import SYSTEM_CLOCK
from conveyor.rules import BackendConfig

__all__ = ["RedisConfig", "DEFAULT_URL", "config_from_url"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _clock(value: Any) -> Any:
    if not callable(getattr(value, "time", None)):
        raise TypeError(f"clock must have a time() method returning epoch seconds, not {value!r}")
    return value


def _positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be more than 0, not {value!r}")


def _prefix(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(
            f"prefix must be non-empty printable text without spaces, not {value!r}"
            " (use e.g. 'conveyor', or '{conveyor}' to keep every key in one cluster slot)"
        )


def _url(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"url must start with redis://, rediss:// or unix://, not {value!r}")


@attrs.frozen
class RedisConfig(BackendConfig):
    """``url``: the server (``redis://[user:password@]host:port/db``, ``rediss://`` for
    TLS); ``queue``: default queue; ``prefix``: the first part of every key;
    ``lease_seconds``: how long a claim lasts without a heartbeat; ``idle_wait``:
    how long an empty poll blocks on the server for a push before reporting idle
    again; ``max_connections``, ``socket_timeout``, ``connect_timeout``: the
    connection pool; ``clock``: a ``conveyor.Clock`` (keyword only, for tests)
    whose reading is passed to every script, so leases and delays follow it."""

    url: str = attrs.field(default=DEFAULT_URL, validator=_url)
    queue: str = "default"
    prefix: str = attrs.field(default="conveyor", validator=_prefix)
    lease_seconds: float = attrs.field(default=30.0, validator=_positive)
    idle_wait: float = attrs.field(default=1.0, validator=_positive)
    max_connections: int = attrs.field(default=64, validator=_positive)
    socket_timeout: float = attrs.field(default=10.0, validator=_positive)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    clock: Any = attrs.field(default=SYSTEM_CLOCK, converter=_clock, kw_only=True)


def config_from_url(parts: SplitResult) -> dict[str, Any]:
    """``redis://host:port/db?queue=mail`` → ``{"url": "redis://host:port/db"}``
    (the registry adds the query's keys)."""
    scheme = parts.scheme.lower()
    netloc = parts.netloc or "127.0.0.1:6379"
    return {"url": urlunsplit((scheme, netloc, parts.path, "", ""))}

"""The Redis backend's configuration, from a ``redis://`` URL and keyword arguments."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import attrs

from conveyor import ConfigError
from conveyor.rules import BackendConfig, seconds, whole

__all__ = ["RedisConfig", "DEFAULT_URL", "config_from_url", "check_url"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
HOUR = 3600.0


def _prefix(_: object, __: attrs.Attribute[str], value: str) -> None:
    if (
        type(value) is not str
        or not value
        or len(value) > 200
        or any(c.isspace() or not c.isprintable() or "\ud800" <= c <= "\udfff" for c in value)
    ):
        raise ValueError(
            f"prefix must be 1 to 200 printable characters without spaces, not {value!r:.80}"
            " (use e.g. 'conveyor', or '{conveyor}' to keep every key in one cluster slot)"
        )


def _url(_: object, __: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str or not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"url must start with redis://, rediss:// or unix://, not {value!r:.80}")
    check_url(urlsplit(value))


@attrs.frozen(kw_only=True)
class RedisConfig(BackendConfig):
    """``url``: the server (``redis://[user:password@]host:port/db``, ``rediss://`` for
    TLS); ``queue``: default queue; ``prefix``: the first part of every key;
    ``lease_seconds``: how long a claim lasts without a heartbeat (at most a year);
    ``idle_wait``: how long an empty poll blocks on the server for a push before
    reporting idle again (at most an hour); ``max_connections`` (1 to 10,000),
    ``socket_timeout``, ``connect_timeout`` (at most an hour): the connection
    pool; ``clock``: a ``conveyor.Clock`` (for tests) whose reading is passed to
    every script, so leases and delays follow it. Every field is a keyword."""

    url: str = attrs.field(default=DEFAULT_URL, validator=_url)
    prefix: str = attrs.field(default="conveyor", validator=_prefix)
    idle_wait: float = attrs.field(default=1.0, validator=seconds(high=HOUR))
    max_connections: int = attrs.field(default=64, validator=whole(1, 10_000))
    socket_timeout: float = attrs.field(default=10.0, validator=seconds(high=HOUR))
    connect_timeout: float = attrs.field(default=5.0, validator=seconds(high=HOUR))


def check_url(parts: SplitResult) -> None:
    """Refuse a redis URL whose port or database the driver would choke on later."""
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigError(
            f"the port in redis URL {_safe(parts)!r} is not a number from 1 to 65535"
            " (the default is 6379)"
        )
    if parts.scheme.lower() == "unix":
        return
    db = parts.path.strip("/")
    if db and not (db.isascii() and db.isdigit() and len(db) <= 5):
        raise ConfigError(
            f"the path of redis URL {_safe(parts)!r} must be a database number"
            f" such as /0, not {'/' + db!r:.40}"
        )


def _safe(parts: SplitResult) -> str:
    """The URL without its password, for messages."""
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


def config_from_url(parts: SplitResult) -> dict[str, Any]:
    """``redis://host:port/db?queue=mail`` → ``{"url": "redis://host:port/db"}``
    (the registry adds the query's keys)."""
    check_url(parts)
    scheme = parts.scheme.lower()
    netloc = parts.netloc or "127.0.0.1:6379"
    return {"url": urlunsplit((scheme, netloc, parts.path, "", ""))}

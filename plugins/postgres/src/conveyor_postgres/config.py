"""The PostgreSQL backend's configuration, from a ``postgresql://`` URL and keyword arguments."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, urlunsplit

import attrs

from conveyor.rules import BackendConfig, seconds, whole

__all__ = ["PostgresConfig", "DEFAULT_URL", "config_from_url", "check_schema"]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def check_schema(value: object) -> str:
    """``value`` if it can name the backend's schema, else ``ValueError`` saying why.

    Lower-case letters, digits and ``_``, at most 40 characters: it is also the
    stem of the LISTEN channels, whose names PostgreSQL caps at 63 bytes.
    """
    if type(value) is not str or not _SCHEMA.fullmatch(value):
        raise ValueError(
            "schema must be 1 to 40 lower-case letters, digits or '_', not starting with a"
            f" digit (e.g. 'conveyor'), not {value!r:.80}"
        )
    return value


def _schema(_: object, __: attrs.Attribute[str], value: object) -> None:
    check_schema(value)


def _url(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"url must start with postgresql:// or postgres://, not {value!r:.80}")


@attrs.frozen(kw_only=True)
class PostgresConfig(BackendConfig):
    """``url``: the server (``postgresql://user[:password]@host:port/db``);
    ``schema``: the schema that holds the backend's tables (one per application or
    test); ``migrate``: create or upgrade that schema at first use (``false``:
    refuse with an error when it is missing or older, for teams that run
    ``conveyor migrate`` themselves);
    ``idle_wait``: the longest an idle poll sleeps between notifications before it
    looks again (a safety net: pushes, retries and resumptions wake it at once, and
    a delayed task at its ``run_at``); ``pool_size``: connections in the pool;
    ``connect_timeout``: seconds to wait for the server before ``BackendUnavailable``;
    ``durable_claims``: a claim's commit waits for the WAL flush (``false``: it does
    not, which saves a disk flush per claim; if the server itself crashes, claims of
    its last moments are undone and handed out again uncounted: see the README);
    ``notify_window``: one-by-one pushes to a queue send at most one notification
    per this many seconds (the others are covered by a trailing one: see the README;
    ``0``: every push notifies).
    libpq reads further settings (``PGSSLMODE``, ``PGPASSFILE``) from its environment."""

    url: str = attrs.field(default=DEFAULT_URL, validator=_url)
    schema: str = attrs.field(default="conveyor", validator=_schema)
    migrate: bool = True
    idle_wait: float = attrs.field(default=60.0, validator=seconds())
    pool_size: int = attrs.field(default=8, validator=whole(2, 1000))
    connect_timeout: float = attrs.field(default=5.0, validator=seconds(0.0, 3600.0))
    durable_claims: bool = True
    notify_window: float = attrs.field(default=0.01, validator=seconds(0.0, 10.0, low_open=False))


def config_from_url(parts: SplitResult) -> dict[str, Any]:
    """``postgresql://u@h:5432/db?queue=mail&schema=jobs`` → ``{"url": "postgresql://u@h:5432/db"}``
    (the registry adds the query's keys to the configuration)."""
    netloc = parts.netloc or "127.0.0.1:5432"
    return {"url": urlunsplit(("postgresql", netloc, parts.path, "", ""))}

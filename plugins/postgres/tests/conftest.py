"""The PostgreSQL backend against the real server, and the whole conformance suite beside this file.

Server: ``CONVEYOR_POSTGRES_URL`` if set, else ``postgresql://postgres@127.0.0.1:5432/test``
(this machine's server, trust auth). If it does not answer, every test here is
skipped with the reason, unless ``CI`` is set, where a missing server fails.
Each test gets a schema of its own (``conveyor_t_<random>``), dropped afterwards,
so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the conformance suite's fixtures and hooks

DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a PostgreSQL server is required here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("CONVEYOR_POSTGRES_URL", DEFAULT)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        _missing(f"PostgreSQL at {url} does not answer: {exc}")
    return url


def drop_schema(url: str, schema: str) -> None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.OperationalError:
        pass  # the server is down (a fault test): the schema goes with the next run's cleanup


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards."""
    schema = f"conveyor_t_{uuid.uuid4().hex[:12]}"
    yield schema
    drop_schema(pg_url, schema)


@pytest.fixture
def pg_terminate(pg_url: str, pg_schema: str) -> Callable[[], int]:
    """Kill every connection of this test's backends (``pg_terminate_backend``, as a
    server restart or an administrator would); returns how many there were."""

    def terminate() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (f"conveyor {pg_schema}",),
            ).fetchall()
        return len(rows)

    return terminate


@pytest.fixture
def pg_open(pg_url: str, pg_schema: str) -> Callable[..., Backend]:
    """Open a backend on this test's schema; keyword arguments go to the config."""

    def open_(**config: object) -> Backend:
        config.setdefault("schema", pg_schema)
        config.setdefault("idle_wait", 0.2)
        return conveyor.open(pg_url, **config)

    return open_


@pytest.fixture
def conveyor_backend(conveyor_clock: ManualClock, pg_open: Callable[..., Backend]) -> Backend:
    return pg_open(clock=conveyor_clock)


@pytest.fixture
def conveyor_reopen(
    conveyor_clock: ManualClock, pg_open: Callable[..., Backend]
) -> Callable[[], Backend]:
    return lambda: pg_open(clock=conveyor_clock)

"""The Redis backend against a real server, and the whole conformance suite beside this file.

Server: ``CONVEYOR_REDIS_URL`` if set; else a ``redis-server`` from PATH started
on a free loopback port for this session (its own temporary directory, no
persistence); else every test here is skipped with the reason — unless ``CI``
is set, where a missing server fails. Each test gets its own key prefix and
its keys are deleted afterwards.

This conftest is not at the repository's top level, where pytest refuses
``pytest_plugins``; importing the suite's names is the equivalent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
from conveyor_redis.keys import Keys

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the conformance suite's fixtures and hooks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server this session started and may stop and start again (same port)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"),
            ],
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        for _ in range(100):
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}; see {self.dir}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self, down: float = 0.0) -> None:
        """Kill the server (its data is lost: no persistence) and start it again."""
        self.stop()
        time.sleep(down)
        self.start()


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a Redis server is required here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The session's own server, or ``None`` when ``CONVEYOR_REDIS_URL`` names one."""
    if os.environ.get("CONVEYOR_REDIS_URL"):
        yield None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("no redis-server on PATH and CONVEYOR_REDIS_URL is not set")
        return
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    url = os.environ.get("CONVEYOR_REDIS_URL") or (redis_server.url if redis_server else "")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _missing(f"Redis at {url} does not answer: {exc}")
    return url


@pytest_asyncio.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=Keys(prefix).scan_pattern(), count=1000):
            await client.delete(key)
    except redis.RedisError:
        pass  # the server was restarted by the test: nothing is left to delete
    finally:
        await client.aclose()


@pytest.fixture
def redis_open(redis_url: str, redis_prefix: str) -> Callable[..., Backend]:
    """Open a backend on this test's prefix; keyword arguments go to the config."""

    def open_(**config: object) -> Backend:
        config.setdefault("prefix", redis_prefix)
        config.setdefault("idle_wait", 0.2)
        return conveyor.open(redis_url, **config)

    return open_


@pytest.fixture
def conveyor_backend(conveyor_clock: ManualClock, redis_open: Callable[..., Backend]) -> Backend:
    return redis_open(clock=conveyor_clock)


@pytest.fixture
def conveyor_reopen(
    conveyor_clock: ManualClock, redis_open: Callable[..., Backend]
) -> Callable[[], Backend]:
    return lambda: redis_open(clock=conveyor_clock)

"""Bad options, bad URLs and unreachable servers: one line naming the fix, never a traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, BackendUnavailable, ConfigError, Worker

Open = Callable[..., Backend]


def _dead_url() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("lease_seconds=inf", "lease_seconds"),
        ("lease_seconds=1e300", "lease_seconds"),
        ("lease_seconds=nan", "lease_seconds"),
        ("lease_seconds=-1", "lease_seconds"),
        ("idle_wait=inf", "idle_wait"),
        ("idle_wait=0", "idle_wait"),
        ("socket_timeout=1e300", "socket_timeout"),
        ("connect_timeout=-5", "connect_timeout"),
        ("max_connections=0", "max_connections"),
        ("max_connections=1e9", "max_connections"),
        ("queue=", "queue"),
    ],
)
def test_every_numeric_option_is_checked_at_open(query: str, option: str) -> None:
    with pytest.raises(ConfigError, match=option) as caught:
        conveyor.open(f"redis://127.0.0.1:6379/0?{query}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:99999/0", "port"),
        ("redis://127.0.0.1:0/0", "port"),
        ("redis://127.0.0.1:http/0", "port"),
        ("redis://127.0.0.1:6379/abc", "database number"),
        ("redis://127.0.0.1:6379/-1", "database number"),
    ],
)
def test_a_bad_url_is_refused_at_open(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        conveyor.open(url)
    assert "\n" not in str(caught.value)


def test_a_queue_name_that_utf8_cannot_encode_is_refused() -> None:
    with pytest.raises(ConfigError, match="UTF-8"):
        conveyor.open("redis://127.0.0.1:6379/0", queue="\ud800")
    backend = conveyor.open("redis://127.0.0.1:6379/0")
    with pytest.raises(ValueError, match="UTF-8"):
        backend.make_shared("bad\udfff")


async def test_an_unreachable_server_raises_backend_unavailable() -> None:
    url = _dead_url()
    backend = conveyor.open(url, connect_timeout=0.5)
    for call in (backend.push("x"), backend.metrics(), backend.list_tasks()):
        with pytest.raises(BackendUnavailable) as caught:
            await call
        message = str(caught.value)
        assert url.removeprefix("redis://") in message and "\n" not in message
        assert ".." not in message and "fetch_by_id" not in message
    await backend.aclose()


async def test_a_burst_worker_on_an_unreachable_server_raises() -> None:
    backend = conveyor.open(_dead_url(), connect_timeout=0.5)

    async def handler(_: object) -> None:
        return None

    worker = Worker(backend, handler, handle_signals=False)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        await asyncio.wait_for(worker.run(burst=True), 30)
    await backend.aclose()


async def test_a_database_the_server_lacks_is_one_clear_error(redis_url: str) -> None:
    backend = conveyor.open(redis_url.rsplit("/", 1)[0] + "/9999")
    with pytest.raises(BackendUnavailable, match="no such database"):
        await backend.metrics()
    await backend.aclose()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_BACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["stats"], 3),
        (["push", "{}"], 3),
        (["worker", "--burst", "handlers:noop"], 3),
    ],
)
def test_the_cli_on_an_unreachable_server_says_one_line(
    tmp_path: Path, command: list[str], status: int
) -> None:
    (tmp_path / "handlers.py").write_text("async def noop(x):\n    return None\n")
    done = _cli("-b", _dead_url() + "?connect_timeout=0.5", *command, cwd=tmp_path)
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("conveyor: error:")]
    assert len(errors) == 1 and "unreachable" in errors[0], done.stderr
    assert ".." not in errors[0]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [(":99999/0", 1, "port"), ("/abc", 1, "database number"), ("/9999", 3, "no such database")],
)
def test_the_cli_with_a_bad_url_says_one_line(
    tmp_path: Path, redis_url: str, path: str, status: int, says: str
) -> None:
    base = redis_url.rsplit("/", 1)[0]
    if path.startswith(":"):
        base = base.rsplit(":", 1)[0]
    done = _cli("-b", base + path, "stats", cwd=tmp_path)
    assert done.returncode == status, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr

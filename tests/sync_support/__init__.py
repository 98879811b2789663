"""Stores for the blocking-API tests: a JSON file, and Redis under a prefix of the test's own.

Redis: ``CONVEYOR_REDIS_URL`` or 127.0.0.1:6379 (what this machine kind runs and
.ci/run starts); unreachable, the Redis cases are skipped, except under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_URL = os.environ.get("CONVEYOR_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> None:
    """Skip (fail under CI) when the test Redis does not answer."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} does not answer: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: a Redis server is required here)")
        pytest.skip(reason)


def delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store's URL of ``kind`` (json or redis), removed afterwards."""
    if kind == "json":
        yield f"json://{tmp_path}/tasks.json"
        return
    redis_available()
    prefix = f"test-sync-{uuid.uuid4().hex[:10]}"
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        delete_prefix(prefix)

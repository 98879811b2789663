"""The Flask example: a request enqueues (blocking API), the worker runs it, a request reads it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1]
sys.path.insert(0, str(EXAMPLE))
from shop_app import create_app  # noqa: E402

REDIS_URL = os.environ.get("CONVEYOR_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["json", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "json":
        yield f"json://{tmp_path}/tasks.json"
        return
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} does not answer: {exc} (CI is set)")
        pytest.skip(f"Redis at {REDIS_URL} does not answer: {exc}")
    prefix = f"test-flask-{uuid.uuid4().hex[:10]}"
    yield f"{REDIS_URL}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def test_a_request_enqueues_and_the_worker_runs_it(store: str) -> None:
    client = create_app(store).test_client()
    sent = [client.post("/signup", json={"email": f"user{n}@example.com"}) for n in range(3)]
    assert [r.status_code for r in sent] == [202, 202, 202]
    ids = [r.get_json()["task"] for r in sent]
    assert [client.get(f"/tasks/{i}").get_json()["status"] for i in ids] == ["Pending"] * 3

    worker = subprocess.run(
        [sys.executable, "worker.py", store, "--burst"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "3 succeeded, 0 failed" in worker.stdout

    for n, task_id in enumerate(ids):
        answer = client.get(f"/tasks/{task_id}").get_json()
        assert answer["status"] == "Done"
        assert answer["result"] == f"welcome mail sent to user{n}@example.com"


def test_bad_requests_are_refused_before_anything_is_stored(store: str) -> None:
    client = create_app(store).test_client()
    assert client.post("/signup", json={"mail": "x"}).status_code == 400
    assert client.post("/signup", data="not json").status_code == 400
    assert client.get("/tasks/not-an-id").status_code == 404
    assert client.get("/tasks/06h3amrf3k000mr1qjpvkg0m00").status_code == 404

"""A real Django project on ConveyorBackend, end to end, against the JSON and Redis stores.

Each step is its own process, as in production: ``drive.py`` requests the
project's views with Django's test client (enqueue, read results through
``get_result``), ``manage.py conveyor_worker`` runs the tasks. Runs on whatever
Django this interpreter has: Django 6's ``django.tasks`` (``make test-django6``,
Python 3.12) or the ``django-tasks`` backport (the main environment, 3.11).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).parent / "project"
REDIS_URL = os.environ.get("CONVEYOR_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} does not answer: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: a Redis server is required here)")
        pytest.skip(reason)


@pytest.fixture(params=["json", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "json":
        yield f"json://{tmp_path}/tasks.json"
        return
    _redis_or_skip()
    import redis

    prefix = f"test-django-{uuid.uuid4().hex[:10]}"
    yield f"{REDIS_URL}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def _env(store: str) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_TEST_URL": store, "PYTHONPATH": str(PROJECT)}


def _drive(store: str, command: str, *names: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "drive.py", command, *names],
        cwd=PROJECT,
        env=_env(store),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _manage(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=_env(store),
        capture_output=True,
        text=True,
        timeout=120,
    )


KINDS = ["add", "mail", "explode", "async", "context", "deferred", "urgent"]


def test_enqueue_from_a_view_run_by_the_worker_command_read_back_through_django(
    store: str,
) -> None:
    ordered = _drive(store, "order", *KINDS)
    assert {kind: (r["code"], r["status"]) for kind, r in ordered.items()} == {
        kind: (202, "READY") for kind in KINDS
    }
    ids = {kind: r["id"] for kind, r in ordered.items()}
    before = _drive(store, "result", *ids.values())
    assert {r["status"] for r in before.values()} == {"READY"}

    worker = _manage(store, "conveyor_worker", "--burst")
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "queues default, mail" in worker.stdout
    assert "5 succeeded, 1 failed" in worker.stdout

    results = _drive(store, "result", *ids.values())
    got = {kind: results[task_id] for kind, task_id in ids.items()}
    assert got["add"]["status"] == "SUCCESSFUL"
    assert got["add"]["return_value"] == 5
    assert got["add"]["attempts"] == 1 and got["add"]["finished_at"] is not None
    assert got["mail"]["status"] == "SUCCESSFUL"
    assert (got["mail"]["queue"], got["mail"]["priority"]) == ("mail", 50)
    assert got["mail"]["kwargs"] == {"subject": "hello"}
    assert got["mail"]["return_value"] == {"sent_to": "ada@example.com", "subject": "hello"}
    assert got["async"]["return_value"] == 42
    assert got["context"]["return_value"] == ["ctx", 1, ids["context"]]
    assert (got["urgent"]["priority"], got["urgent"]["return_value"]) == (90, 20)
    # a task that raised: FAILED, with the class and the task's own traceback
    assert got["explode"]["status"] == "FAILED"
    (error,) = got["explode"]["errors"]
    assert error["exception_class_path"] == "builtins.ValueError"
    assert "boom: on purpose" in error["traceback"]
    assert 'tasks.py", line' in error["traceback"]
    assert "runner.py" not in error["traceback"]
    # run_after an hour from now: not run by a burst worker, still READY
    assert got["deferred"]["status"] == "READY"
    assert got["deferred"]["finished_at"] is None


def test_a_worker_serves_only_the_queues_it_is_given(store: str) -> None:
    ids = {kind: r["id"] for kind, r in _drive(store, "order", "add", "mail").items()}
    worker = _manage(store, "conveyor_worker", "--burst", "--queue", "mail")
    assert worker.returncode == 0, worker.stderr[-3000:]
    results = _drive(store, "result", *ids.values())
    assert results[ids["mail"]]["status"] == "SUCCESSFUL"
    assert results[ids["add"]]["status"] == "READY"


def test_an_unknown_result_id_is_does_not_exist(store: str) -> None:
    answer = _drive(store, "result", "06h3amrf3k000mr1qjpvkg0m00")
    assert answer["06h3amrf3k000mr1qjpvkg0m00"]["code"] == 404


def test_a_running_worker_stops_on_sigterm(store: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "conveyor_worker"],
        cwd=PROJECT,
        env=_env(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "conveyor worker:" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-3000:]
    assert "stopped; 0 succeeded, 0 failed" in out


def test_command_mistakes_are_one_line(store: str) -> None:
    done = _manage(store, "conveyor_worker", "--queue", "nope", "--burst")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "CommandError: queue 'nope' is not in TASKS['default']['QUEUES'] (default, mail)"
    ]


def test_an_unreachable_store_exits_3_with_one_line(tmp_path: Path) -> None:
    done = _manage("redis://127.0.0.1:1/0", "conveyor_worker", "--burst")
    assert done.returncode == 3, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: "), done.stderr[-2000:]

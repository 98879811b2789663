"""A Flask app that enqueues from its requests with conveyor's blocking API.

    CONVEYOR_URL=json:///tmp/shop/tasks.json flask --app "shop_app:create_app()" run
    python worker.py json:///tmp/shop/tasks.json          # in another terminal

Flask views are plain functions with no event loop: ``BlockingBackend`` gives
them ``push`` and ``fetch_by_id`` as plain calls, safe from every request
thread (and in each process of ``gunicorn --preload``).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, request

from conveyor import PayloadError
from conveyor.blocking import BlockingBackend


def create_app(url: str | None = None) -> Flask:
    """The app, enqueuing into the conveyor store at ``url`` (default: ``$CONVEYOR_URL``)."""
    app = Flask(__name__)
    tasks = BlockingBackend(url or os.environ["CONVEYOR_URL"])

    @app.post("/signup")
    def signup() -> tuple[dict[str, Any], int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            abort(400, description='send JSON {"email": "..."}')
        try:
            task_id = tasks.push({"email": body["email"]}, name="welcome_email", queue="mail")
        except PayloadError as exc:
            abort(400, description=str(exc))
        return {"task": str(task_id)}, 202

    @app.get("/tasks/<task_id>")
    def task_status(task_id: str) -> dict[str, Any]:
        try:
            task = tasks.fetch_by_id(task_id)
        except ValueError:
            abort(404)
        if task is None:
            abort(404)
        return {
            "task": str(task.id),
            "status": str(task.status),
            "result": task.result,
            "error": task.last_error,
        }

    return app

"""Named tasks: ``App``, ``@app.task``, ``push`` by name, and one worker for all of them.

Modules, each importing only those above it: ``named`` (a registered task),
``runner`` (the worker over an app's queues), ``app`` (``App``), ``supervisor``
(``--processes``: N worker processes, restarted when they die).
"""

from __future__ import annotations

from conveyor.app.app import App
from conveyor.app.named import NamedTask
from conveyor.app.runner import AppWorker

__all__ = ["App", "AppWorker", "NamedTask"]

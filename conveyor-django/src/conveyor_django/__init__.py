"""conveyor-django: a ``django.tasks`` backend on conveyor, and ``manage.py conveyor_worker``.

``TASKS = {"default": {"BACKEND": "conveyor_django.ConveyorBackend",
"OPTIONS": {"URL": "redis://127.0.0.1:6379/0"}}}``, ``INSTALLED_APPS += ["conveyor_django"]``
for the worker command. See docs/django.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConveyorBackend"]


def __getattr__(name: str) -> Any:
    # Imported on first use: Django loads the app package before settings are ready.
    if name == "ConveyorBackend":
        from conveyor_django.backend import ConveyorBackend

        return ConveyorBackend
    raise AttributeError(name)

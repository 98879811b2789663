"""The Django app that provides ``manage.py conveyor_worker``."""

from __future__ import annotations

from django.apps import AppConfig


class ConveyorDjangoConfig(AppConfig):  # type: ignore[misc]
    name = "conveyor_django"
    verbose_name = "conveyor"

"""The pluggy markers of the ``conveyor`` project."""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookspec", "hookimpl"]

PROJECT = "conveyor"

hookspec = pluggy.HookspecMarker(PROJECT)
"""Marks a function in ``conveyor.hookspecs`` as a hook specification."""

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a backend's method (or an observer's function) as implementing a hook."""

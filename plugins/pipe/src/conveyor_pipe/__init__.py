"""conveyor-pipe: feed any (async) iterable into a backend that accepts pushes, and serve it.

``conveyor.open("pipe", source=items, into=conveyor.open("json://tasks.json"))``
"""

from __future__ import annotations

from conveyor_pipe.backend import ON_SOURCE_ERROR, PipeBackend, PipeConfig
from conveyor_pipe.feeder import PipeSourceError

__all__ = ["ON_SOURCE_ERROR", "PipeBackend", "PipeConfig", "PipeSourceError"]

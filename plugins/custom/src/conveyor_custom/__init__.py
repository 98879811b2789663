"""conveyor-custom: a backend assembled from your own functions.

``conveyor.open("custom", fetch=..., push=..., ack=...)`` or
``CustomBackendBuilder().fetch(f).push(g).build()``; ``claim``, ``settle``,
``dump_task`` and ``load_task`` help write the parts. See docs/custom-backends.md.
"""

from __future__ import annotations

from conveyor_custom.backend import OPTIONS, CustomBackend, CustomConfig
from conveyor_custom.builder import BuildError, CustomBackendBuilder
from conveyor_custom.parts import PARTS, expected_signature
from conveyor_custom.records import (
    abandon,
    claim,
    dump_task,
    extend,
    is_ready,
    load_task,
    settle,
)

__all__ = [
    "OPTIONS",
    "PARTS",
    "BuildError",
    "CustomBackend",
    "CustomBackendBuilder",
    "CustomConfig",
    "abandon",
    "claim",
    "dump_task",
    "expected_signature",
    "extend",
    "is_ready",
    "load_task",
    "settle",
]

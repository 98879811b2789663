"""Building task records fast: the rules run on every claim and ack of every backend.

``replace(task, **changes)`` is ``attrs.evolve`` for ``conveyor.Task``. A frozen
slotted attrs class sets each field through ``object.__setattr__``; for the 15
fields of ``Task`` that is most of the cost of a claim, so the record is built
by setting its slots through their descriptors instead. That is only sound
while ``Task`` has no validators, converters or init hooks: it is checked at
import, and the plain constructor is used otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from conveyor.task import Task

__all__ = ["FIELDS", "build", "replace"]

FIELDS: tuple[str, ...] = tuple(f.name for f in attrs.fields(Task))
"""``Task``'s field names, in constructor order."""


def _plain(*values: Any) -> Task[Any]:
    return Task(*values)


def _compile() -> Callable[..., Task[Any]]:
    fields: tuple[attrs.Attribute[Any], ...] = tuple(attrs.fields(Task))
    if (
        hasattr(Task, "__attrs_post_init__")
        or hasattr(Task, "__attrs_pre_init__")
        or any(f.validator is not None or f.converter is not None for f in fields)
        or not all(type(Task.__dict__.get(f.name)).__name__ == "member_descriptor" for f in fields)
    ):
        return _plain
    names = [f"v{i}" for i in range(len(fields))]
    scope: dict[str, Any] = {"_new": object.__new__, "_Task": Task}
    lines = [f"def build({', '.join(names)}):", "    task = _new(_Task)"]
    for index, field in enumerate(fields):
        scope[f"_set{index}"] = Task.__dict__[field.name].__set__
        lines.append(f"    _set{index}(task, v{index})")
    lines.append("    return task")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from Task's own field list
    function: Callable[..., Task[Any]] = scope["build"]
    return function


build = _compile()
"""``build(id, args, queue, status, ...)``: ``Task(...)`` with every field positional."""


def replace(task: Task[Any], **changes: Any) -> Task[Any]:
    """``attrs.evolve(task, **changes)``, built directly (``TypeError`` for an unknown field)."""
    unknown = changes.keys() - FIELDS
    if unknown:
        raise TypeError(f"Task has no field(s) {', '.join(sorted(unknown))}")
    get = changes.get
    return build(*(get(name, getattr(task, name)) for name in FIELDS))

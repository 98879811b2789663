"""Building ``Task`` records on the hot path (claim, ack) without attrs' frozen ``__init__``.

A frozen slotted attrs class sets each field through ``object.__setattr__``;
for the 14 fields of ``Task`` that is most of the cost of a claim. Setting the
slots through their descriptors gives the same object for about two thirds of
the time. It is only sound while ``Task`` has no validators, converters or
post-init hook, so that is checked at import and the plain constructor used
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from conveyor import Task

__all__ = ["make_task"]


def _plain(*values: Any) -> Task[Any]:
    return Task(*values)


def _build() -> Callable[..., Task[Any]]:
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
    lines = [f"def make_task({', '.join(names)}):", "    task = _new(_Task)"]
    for index, field in enumerate(fields):
        scope[f"_set{index}"] = Task.__dict__[field.name].__set__
        lines.append(f"    _set{index}(task, v{index})")
    lines.append("    return task")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from Task's own field list
    function: Callable[..., Task[Any]] = scope["make_task"]
    return function


make_task = _build()
"""``make_task(id, args, queue, status, ..., meta)``: ``Task(...)`` with every field positional."""

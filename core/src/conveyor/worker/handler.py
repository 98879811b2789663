"""Reading a handler once: async or not, the type of its args, whether it takes a context."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["HandlerSpec", "inspect_handler"]


@attrs.frozen(slots=True)
class HandlerSpec:
    """What the worker needs to know to call a handler."""

    function: Callable[..., Any]
    is_async: bool
    args_type: Any
    wants_context: bool
    name: str


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - instances with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def inspect_handler(function: Callable[..., Any]) -> HandlerSpec:
    """Read ``function``'s signature: ``handler(args)`` or ``handler(args, ctx)``.

    The first parameter's annotation is the type the payload is decoded to (no
    annotation: plain JSON values). Raises ``TypeError`` naming the handler
    when its signature does not fit.
    """
    if not callable(function):
        raise TypeError(f"a handler must be callable, not {function!r}")
    name = getattr(function, "__qualname__", None) or type(function).__name__
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of handler {name}: {exc}") from None
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    if not positional and not variadic:
        raise TypeError(
            f"handler {name} takes no arguments; it must take the task's args:"
            " def handler(args) or def handler(args, ctx)"
        )
    if len(required) > 2:
        raise TypeError(
            f"handler {name} requires {len(required)} arguments; it gets the task's args"
            " and, if it declares a second parameter, the TaskContext"
        )
    wants_context = len(positional) >= 2
    args_type: Any = Any
    if positional:
        target = function if inspect.isroutine(function) else type(function).__call__
        try:
            hints = typing.get_type_hints(target)
        except Exception as exc:
            raise TypeError(
                f"cannot resolve the type annotations of handler {name}: {exc};"
                " import the annotated types at module level"
            ) from None
        args_type = hints.get(positional[0].name, Any)
    return HandlerSpec(function, _is_async(function), args_type, wants_context, name)

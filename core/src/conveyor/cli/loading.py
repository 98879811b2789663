"""Importing a handler named ``MODULE:FUNCTION`` the way a user expects from their project."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from conveyor.cli.errors import CliError

__all__ = ["import_handler", "import_target"]


def import_handler(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (or ``module:Class.method``) with the current
    directory importable; ``CliError`` naming what is missing otherwise."""
    target = import_target(spec)
    if not callable(target):
        raise CliError(f"{spec} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def import_target(spec: str) -> Any:
    """Import the object ``package.module:name`` names (a function, an app, ...)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CliError(f"{spec!r} is not MODULE:FUNCTION; write it like tasks:send_email")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CliError(
                f"cannot import handler module {module_name!r}: no module named {exc.name!r}"
                f" (looked in {here} and the installed packages; run from your project"
                " folder or install it)"
            ) from None
        raise CliError(_failed(module_name, exc)) from None
    except Exception as exc:
        # The module exists but raised while importing: that is the user's code to fix.
        raise CliError(_failed(module_name, exc)) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(
                f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attribute!r}"
            ) from None
    return target


def _failed(module_name: str, exc: BaseException) -> str:
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}, line {exc.lineno})"
    elif tb is not None:
        where = f" ({tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"importing handler module {module_name!r} failed: {type(exc).__name__}: {message}{where}"
    )

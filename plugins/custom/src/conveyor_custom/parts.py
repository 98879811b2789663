"""The parts a custom backend is made of: which exist, what each must look like, and how
a user's (sync or async) function is turned into the hook it stands for."""

from __future__ import annotations

import asyncio
import difflib
import functools
import inspect
import re
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conveyor import ConfigError
from conveyor.rules.authoring import HOOK_NAMES, hookspecs, spec_parameters

__all__ = [
    "PARTS",
    "REQUIRED",
    "SYNC_ONLY",
    "Runner",
    "check_part",
    "expected_signature",
    "unknown_part",
]

REQUIRED = ("fetch",)
"""Parts a custom backend cannot do without."""

SYNC_ONLY = frozenset({"middleware", "get_queue", "make_shared"})
"""Hooks the facade calls synchronously: their parts must be plain functions."""

PARTS: tuple[str, ...] = ("fetch", *sorted(HOOK_NAMES - {"poll"}))
"""Every part name: ``fetch`` (from which ``poll`` is built) and each other hook."""

_AWAITABLE = re.compile(r"^Awaitable\[(.*)\]$")


def expected_signature(part: str) -> str:
    """``part``'s expected signature, for error messages: ``push(tasks: ...) -> ...``."""
    if part == "fetch":
        return "fetch(worker: WorkerInfo) -> Task[bytes] | None (sync or async)"
    spec = inspect.signature(getattr(hookspecs, part))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in spec.parameters.values())
    returns = str(spec.return_annotation)
    match = _AWAITABLE.match(returns)
    if match:
        return f"{part}({params}) -> {match.group(1)} (sync or async)"
    if part in SYNC_ONLY:
        return f"{part}({params}) -> {returns} (a plain function, not async)"
    return (
        f"{part}({params}) -> {returns} (an async generator, or a function returning an iterable)"
    )


def _arity(part: str) -> int:
    return 1 if part == "fetch" else len(spec_parameters(part))


def unknown_part(part: str) -> ConfigError:
    """The error for a part name that does not exist, with the closest one."""
    if part == "poll":
        return ConfigError(
            "a custom backend takes no 'poll' part: give 'fetch' (returns the next claimed task"
            " or None) and conveyor builds the poll stream from it"
        )
    close = difflib.get_close_matches(part, PARTS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"custom backend has no part named {part!r}.{hint} Parts: {', '.join(PARTS)}"
    )


def check_part(part: str, function: Any) -> None:
    """Raise ``ConfigError`` naming ``part`` and its expected signature unless ``function`` fits."""
    if part not in PARTS:
        raise unknown_part(part)
    if not callable(function):
        raise ConfigError(
            f"custom backend part {part!r} must be a function {expected_signature(part)},"
            f" not {type(function).__name__}"
        )
    if part in SYNC_ONLY and _is_async(function):
        raise ConfigError(
            f"custom backend part {part!r} must be a plain function, not async:"
            f" {expected_signature(part)}"
        )
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # builtins without a readable signature: trust them
    try:
        signature.bind(*([None] * _arity(part)))
    except TypeError:
        raise ConfigError(
            f"custom backend part {part!r} takes {signature}; expected {expected_signature(part)}"
        ) from None


def _is_async(function: Any) -> bool:
    return (
        inspect.iscoroutinefunction(function)
        or inspect.isasyncgenfunction(function)
        or (
            not inspect.isroutine(function)
            and inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004
        )
    )


class Runner:
    """Runs the user's sync functions: on one dedicated thread (``thread``, the default, so
    blocking calls never stall the event loop and are never concurrent), or ``inline``."""

    def __init__(self, mode: str) -> None:
        if mode not in ("thread", "inline"):
            raise ConfigError(f"custom backend run_sync must be 'thread' or 'inline', not {mode!r}")
        self.mode = mode
        self.users = 0
        self._executor: ThreadPoolExecutor | None = None

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, awaited if it is (or returns) an awaitable."""
        if _is_async(function):
            return await function(*args)
        if self.mode == "inline":
            result = function(*args)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-custom")
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, functools.partial(function, *args))
        if inspect.isawaitable(result):
            result = await result
        return result

    async def iterate(self, function: Callable[..., Any], *args: Any) -> AsyncIterator[Any]:
        """Iterate what ``function(*args)`` gives: an async iterable, or an iterable (read
        on the runner's thread in ``thread`` mode, as it may block)."""
        if inspect.isasyncgenfunction(function):
            produced: Any = function(*args)
        else:
            produced = await self.call(function, *args)
        if hasattr(produced, "__aiter__"):
            async for item in produced:
                yield item
            return
        iterator = iter(produced)
        done = object()
        while True:
            item = await self.call(next, iterator, done)
            if item is done:
                return
            yield item

    def shutdown(self) -> None:
        """Stop the thread, if one was started."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def parts_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The supplied (not ``None``) parts of ``values``, each checked."""
    parts = {name: value for name, value in values.items() if value is not None}
    for name, value in parts.items():
        check_part(name, value)
    missing = [name for name in REQUIRED if name not in parts]
    if missing:
        raise ConfigError(
            "custom backend is missing its required part(s): "
            + "; ".join(expected_signature(name) for name in missing)
        )
    return parts

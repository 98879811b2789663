"""Finding which hooks a plugin object implements, and assembling plugins from functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from conveyor import hookspecs
from conveyor.capability import BACKEND_HOOKS, DERIVED, Capability
from conveyor.markers import PROJECT, hookimpl

__all__ = ["HOOK_NAMES", "implemented_hooks", "capabilities_of", "assemble", "spec_parameters"]

_MARK = PROJECT + "_impl"

HOOK_NAMES: frozenset[str] = frozenset(
    name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), PROJECT + "_spec")
)
"""Every hook name the contract defines."""


def spec_parameters(name: str) -> tuple[str, ...]:
    """The parameter names of hook ``name``, in order."""
    return tuple(inspect.signature(getattr(hookspecs, name)).parameters)


def implemented_hooks(plugin: object) -> frozenset[str]:
    """Names of the hooks ``plugin`` (an object or a class) marks with ``hookimpl``."""
    found = set()
    for attr in dir(plugin):
        if attr.startswith("__"):
            continue
        try:
            value = inspect.getattr_static(plugin, attr)
        except AttributeError:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        opts = getattr(value, _MARK, None)
        if isinstance(opts, dict) and not (opts.get("wrapper") or opts.get("hookwrapper")):
            found.add(opts.get("specname") or attr)
    return frozenset(found)


def capabilities_of(hooks: frozenset[str]) -> frozenset[Capability]:
    """The capabilities a set of implemented hooks gives, derived ones included."""
    caps = {Capability(h) for h in hooks if h not in BACKEND_HOOKS and h in HOOK_NAMES}
    caps.update(cap for cap, needs in DERIVED.items() if needs <= caps)
    return frozenset(caps)


def assemble(name: str, hooks: Mapping[str, Callable[..., Any]]) -> object:
    """A plugin object implementing exactly ``hooks`` (hook name -> function).

    For backends whose capabilities depend on their configuration (pipe,
    custom): each function is checked against the hook's parameters and
    marked, and nothing else is implemented. Raises ``TypeError`` naming the
    hook and the expected signature on a mismatch, ``ValueError`` on an
    unknown hook name.
    """
    namespace = SimpleNamespace(__name__=name)
    for hook, function in hooks.items():
        if hook not in HOOK_NAMES:
            known = ", ".join(sorted(HOOK_NAMES))
            raise ValueError(f"{hook!r} is not a conveyor hook; known hooks: {known}")
        expected = spec_parameters(hook)
        try:
            params = tuple(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            params = expected
        if params != expected:
            raise TypeError(
                f"{name}: the function for {hook!r} takes ({', '.join(params)});"
                f" expected ({', '.join(expected)})"
            )
        setattr(namespace, hook, hookimpl(specname=hook)(_exact(hook, function)))
    return namespace


def _exact(hook: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function with exactly the hook's parameter names (pluggy reads them)."""
    params = spec_parameters(hook)
    args = ", ".join(params)
    scope: dict[str, Any] = {"_f": function}
    exec(f"def {hook}({args}):\n    return _f({args})\n", scope)  # noqa: S102 - names come from hookspecs
    result: Callable[..., Any] = scope[hook]
    return result

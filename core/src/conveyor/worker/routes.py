"""Routing by task name: which handler runs a task, read once, looked up with one dict get.

A ``Routes`` maps ``Task.name`` to a ``Route`` (a handler with its own middleware
and retry policy). The worker turns each route into a ``Prepared`` entry when a run
starts, so the lane's per-task work is one ``dict.get`` on the name and a tuple of
fields it already holds: no closure, no signature read, no event per task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from conveyor.middleware.base import Middleware
from conveyor.middleware.retry import RetryPolicy
from conveyor.worker.handler import HandlerSpec, inspect_handler

__all__ = ["Route", "Routes", "UnknownTask", "unknown_name"]

MAX_LISTED = 20
"""How many known names an unknown-name error lists before it says how many more."""


class UnknownTask(LookupError):
    """What a task whose name no route has fails with (it is killed; the worker carries on)."""


@attrs.frozen(slots=True)
class Route:
    """One named handler: ``middleware`` runs inside the worker's own (outermost first),
    ``policy`` replaces the worker's retry policy for this name's failures."""

    name: str
    spec: HandlerSpec
    middleware: tuple[Middleware, ...] = ()
    policy: RetryPolicy | None = None

    @classmethod
    def of(
        cls,
        name: str,
        handler: Callable[..., Any],
        *,
        middleware: Sequence[Middleware] = (),
        policy: RetryPolicy | None = None,
    ) -> Route:
        """A route for ``handler`` (its signature read now; ``TypeError`` if it does not fit)."""
        if type(name) is not str or not name:
            raise ValueError(f"a task name must be a non-empty string, not {name!r}")
        return cls(name, inspect_handler(handler), tuple(middleware), policy)


class Routes(Mapping[str, Route]):
    """Handlers by task name, for ``Worker(backend, routes)``.

    Built from ``Route`` objects or a mapping of names to plain handlers
    (``Routes({"mail.send": send})``). Two routes with one name are refused.
    """

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, Callable[..., Any]] | Iterable[Route]) -> None:
        table: dict[str, Route] = {}
        items: Iterable[Route]
        if isinstance(routes, Mapping):
            items = [
                value if isinstance(value, Route) else Route.of(key, value)
                for key, value in routes.items()
            ]
        else:
            items = routes
        for route in items:
            if not isinstance(route, Route):
                raise TypeError(f"Routes takes Route objects, not {type(route).__name__}")
            if route.name in table:
                raise ValueError(f"two handlers for the task name {route.name!r}")
            table[route.name] = route
        if not table:
            raise ValueError("Routes needs at least one named handler")
        self._routes = table

    def __getitem__(self, name: str) -> Route:
        return self._routes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"Routes({', '.join(self._routes)})"


def unknown_name(name: str | None, known: Iterable[str]) -> str:
    """The error a task gets when no route has its name: it names the known ones."""
    names = sorted(known)
    listed = ", ".join(names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        listed += f" and {len(names) - MAX_LISTED} more"
    what = "the task has no name" if name is None else f"no task named {name!r}"
    return (
        f"{what} in this worker, which runs: {listed};"
        " push it with the name of a registered task, or run a worker that has it"
    )

"""What a failure of the server or the network becomes: one line naming the server and the fix.

redis-py's errors carry the driver's wording (``Error 111 connecting to ...``) and
a trailing period; the contract wants ``BackendUnavailable`` for anything retrying
later may cure (the CLI exits 3, a running worker backs off, a burst stops), and
``ConveyorError`` for a command the server refused.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from redis.exceptions import AuthenticationError, RedisError, ResponseError

from conveyor import BackendUnavailable, ConveyorError

__all__ = ["FAILURES", "translate", "guarded", "text_of"]

FAILURES = (RedisError, OSError)
"""What the driver raises for a server or network failure."""

P = ParamSpec("P")
T = TypeVar("T")


class _HasWhere(Protocol):
    def where(self) -> str: ...


class _Owner(Protocol):
    @property
    def connection(self) -> _HasWhere: ...


def text_of(exc: BaseException) -> str:
    """The driver's message on one line, without its trailing period."""
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def translate(exc: BaseException, where: str) -> ConveyorError:
    """The conveyor error for a driver error ``exc`` met talking to redis ``where``."""
    text = text_of(exc)
    if isinstance(exc, AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        return BackendUnavailable(
            f"redis {where} refused the credentials ({text}): put the right"
            " user:password in the URL (redis://user:password@host:port/db)"
        )
    if "DB index is out of range" in text:
        return BackendUnavailable(
            f"redis {where} has no such database ({text}): use a database number the"
            " server has in the URL's path (0 to 15 unless its 'databases' setting says more)"
        )
    if isinstance(exc, ResponseError):
        return ConveyorError(f"redis {where} refused a command: {text}")
    return BackendUnavailable(
        f"redis {where} is unreachable ({text}): check that the server is running"
        " and that the URL's host and port are right"
    )


def guarded(
    method: Callable[Concatenate[Any, P], Awaitable[T]],
) -> Callable[Concatenate[Any, P], Awaitable[T]]:
    """``method`` of a backend with driver errors raised as ``translate`` says."""

    @functools.wraps(method)
    async def wrapper(self: _Owner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except FAILURES as exc:
            raise translate(exc, self.connection.where()) from exc

    return wrapper

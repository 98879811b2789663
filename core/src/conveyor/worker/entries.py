"""What a lane needs to run one handler, worked out once per run: a tuple per route.

``Entry`` is ``(function, decode, wants_context, fast, call, policy)``, unpacked by
the lane in one step per task: ``decode(compact)`` is the codec's decoder prepared
for the handler's args type, ``call`` the middleware chain ending in the handler,
``fast`` whether the lane may call an ``async`` handler inline (no middleware).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from conveyor.codec import Codec
from conveyor.middleware.base import Invocation, Middleware, Next
from conveyor.middleware.retry import RetryPolicy
from conveyor.worker.handler import HandlerSpec
from conveyor.worker.state import Settings

__all__ = ["Entry", "prepare"]

Entry = tuple[Any, Any, bool, bool, Next, RetryPolicy]

ThreadRunner = Callable[[Any, bool], Next]
"""Makes the ``Next`` that runs a plain function in the worker's threads."""


def prepare(
    spec: HandlerSpec,
    inner: tuple[Middleware, ...],
    policy: RetryPolicy | None,
    settings: Settings,
    codec: Codec,
    in_thread: ThreadRunner,
) -> Entry:
    """The entry for one handler: ``inner`` middleware sits inside the worker's own,
    ``policy`` (else the worker's) decides what its failures become."""
    chain = settings.chain + inner
    call = _chain(spec, chain, in_thread)
    fast = not chain and spec.is_async
    args_type = spec.args_type
    decoder = getattr(codec, "decoder", None)
    decode = decoder(args_type) if decoder is not None else None
    if decode is None:
        decode = lambda compact: codec.decode(compact, args_type)  # noqa: E731
    return (spec.function, decode, spec.wants_context, fast, call, policy or settings.policy)


def _chain(spec: HandlerSpec, chain: tuple[Middleware, ...], in_thread: ThreadRunner) -> Next:
    function = spec.function
    call: Next
    if spec.is_async:
        if spec.wants_context:
            call = lambda inv: function(inv.args, inv.context)  # noqa: E731
        else:
            call = lambda inv: function(inv.args)  # noqa: E731
    else:
        call = in_thread(function, spec.wants_context)
    for item in reversed(chain):
        call = _link(item, call)
    return call


def _link(item: Middleware, call_next: Next) -> Next:
    def step(invocation: Invocation) -> Awaitable[Any]:
        return item(invocation, call_next)

    return step

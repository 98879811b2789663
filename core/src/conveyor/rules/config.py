"""The configuration every backend shares, and validators for the rest of its options.

A plugin's ``Config`` subclasses ``BackendConfig`` and adds its own fields. The
registry structures URL queries and keyword arguments into it with cattrs, so
every value arrives here as the user typed it; each validator refuses what the
backend could not work with (a lease of ``inf``, a queue named ``""``) with a
message naming the option and its range, before anything is opened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from conveyor.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BackendConfig",
    "MAX_QUEUE_NAME",
    "MAX_SECONDS",
    "check_queue_name",
    "seconds",
    "whole",
    "clock",
    "config_of",
]

MAX_QUEUE_NAME = 200
"""The longest queue name, in characters."""

MAX_SECONDS = 366 * 24 * 3600.0
"""The longest duration any option accepts: a year, well past any sane lease or wait
and far inside what a datetime or a Redis score can hold."""

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def check_queue_name(value: object, what: str = "queue") -> str:
    """``value`` if it can name a queue, else ``ValueError`` saying why.

    A queue name is 1 to ``MAX_QUEUE_NAME`` characters that UTF-8 can encode (a
    lone surrogate cannot be stored by any backend). Anything else is data: a
    backend never builds a path or a key pattern from it.
    """
    if type(value) is not str or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r:.80}")
    if len(value) > MAX_QUEUE_NAME:
        raise ValueError(f"{what} must be at most {MAX_QUEUE_NAME} characters, not {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r:.80} holds a character UTF-8 cannot encode") from None
    return value


def _queue(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_queue_name(value, attribute.name)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def seconds(low: float = 0.0, high: float = MAX_SECONDS, *, low_open: bool = True) -> _Validator:
    """A validator for a duration option: a finite number of seconds above ``low``
    (or at least ``low`` when ``low_open`` is false) and at most ``high``."""

    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        above = number is not None and (number > low if low_open else number >= low)
        if number is None or not math.isfinite(number) or not above or number > high:
            bound = f"more than {_number(low)}" if low_open else f"at least {_number(low)}"
            raise ValueError(
                f"{attribute.name} must be a number of seconds {bound} and at most"
                f" {_number(high)},"
                f" not {value!r:.80}"
            )

    return check


def whole(low: int = 1, high: int = 2**31 - 1) -> _Validator:
    """A validator for a count option: a whole number from ``low`` to ``high``."""

    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(
                f"{attribute.name} must be a whole number from {low:,} to {high:,},"
                f" not {value!r:.80}"
            )

    return check


def clock(value: Any) -> Clock:
    """Accept anything with a ``time()`` method returning epoch seconds."""
    if not callable(getattr(value, "time", None)):
        raise TypeError(f"clock must have a time() method returning epoch seconds, not {value!r}")
    return value  # type: ignore[no-any-return]


def _codec(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (
        callable(getattr(value, "encode", None)) and callable(getattr(value, "decode", None))
    ):
        raise TypeError(
            f"codec must be a conveyor.Codec (encode and decode methods), such as"
            f" conveyor.JsonCodec(), not {value!r:.80}; it is passed in Python, not in a URL"
        )


@attrs.frozen(kw_only=True)
class BackendConfig:
    """What every backend is configured with; a plugin's ``Config`` subclasses it.

    ``queue``: the default queue (``get_queue``), 1 to 200 characters.
    ``lease_seconds``: how long a claim lasts without a heartbeat (more than 0,
    at most a year). ``clock``: where "now" comes from; a ``ManualClock`` in
    tests. ``codec``: the ``conveyor.Codec`` payloads are stored with (``None``:
    ``JsonCodec``); the registry puts the ``codec=`` of ``conveyor.open`` here.
    The fields are keyword-only, so a subclass may add required ones.

    A plugin object whose ``config`` attribute is a ``BackendConfig`` tells the
    ``Backend`` facade (and so the worker) its clock, lease and codec that way;
    the facade reads nothing else of the plugin (``config_of``).
    """

    queue: str = attrs.field(default="default", validator=_queue)
    lease_seconds: float = attrs.field(default=30.0, validator=seconds())
    clock: Any = attrs.field(default=SYSTEM_CLOCK, converter=clock)
    codec: Any = attrs.field(default=None, validator=_codec, repr=False)


def config_of(plugin: object) -> BackendConfig | None:
    """``plugin.config`` if it is a ``BackendConfig``, else ``None``: the one attribute of
    a plugin object the core reads besides its hooks."""
    config = getattr(plugin, "config", None)
    return config if isinstance(config, BackendConfig) else None

"""Reading task payloads and schedule options given on the command line."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conveyor.backend import MAX_NAME
from conveyor.cli.errors import CliError
from conveyor.codec import lone_surrogate
from conveyor.rules import MAX_SECONDS, check_queue_name

__all__ = [
    "QUOTING",
    "parse_json",
    "when_arg",
    "seconds_arg",
    "delay_arg",
    "whole_arg",
    "attempts_arg",
    "bounded_arg",
    "queue_arg",
    "name_arg",
    "text_arg",
    "MAX_CONCURRENCY",
]

MAX_CONCURRENCY = 100_000
"""The most tasks one worker may run at once (``--concurrency``)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (only finite numbers are)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range (it would be Infinity)")
    return value


QUOTING = """ (strings need double quotes: '"hello"' or '{"to": "a@example.com"}')"""


def parse_json(text: str | bytes, what: str, *, hint: str = "") -> Any:
    """``text`` as a JSON value; ``CliError`` saying where it is malformed (then ``hint``)."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise CliError(f"{what} is not valid JSON: {exc.msg} at {where}{hint}") from None
    except (ValueError, RecursionError) as exc:
        raise CliError(f"{what} is not valid JSON: {exc}") from None
    # Only a \\u escape, or argv bytes Python could not decode, can hold one.
    plain = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if ("\\u" in plain or not plain.isascii()) and (lone := lone_surrogate(value)) is not None:
        raise CliError(
            f"{what} holds a lone surrogate (\\u{lone}), half of a character that UTF-8"
            " cannot store alone; remove it, or give the whole pair (\\ud83d\\ude00 is one"
            " character)"
        )
    return value


def when_arg(text: str) -> datetime:
    """An ``--at`` value: ISO 8601 with a time zone (``2030-01-31T09:00:00Z``)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2030-01-31T09:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone; add one, e.g. {text}Z for UTC or {text}+01:00"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not zero or more seconds")
    return value


def seconds_arg(text: str) -> float:
    """A duration such as ``--grace``: zero to ``MAX_SECONDS`` (a year) seconds."""
    value = _seconds(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than a year; give at most {MAX_SECONDS:,.0f} seconds"
        )
    return value


def delay_arg(text: str) -> float:
    """A ``--delay``: zero or more seconds that still end before the year 10000."""
    value = _seconds(text)
    latest = (datetime.max.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    if value > latest - 86400:  # a day's margin keeps every clock and zone in range
        raise argparse.ArgumentTypeError(
            f"{text!r} seconds is past the year 9999; give at most"
            f" {latest - 86400:,.0f} seconds, or a time with --at"
        )
    return value


def whole_arg(text: str) -> int:
    """A whole number (may be negative, e.g. a priority)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def bounded_arg(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``, for options such as ``--page-size``."""

    def parse(text: str) -> int:
        value = whole_arg(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: give a whole number from {low:,} to {high:,}"
            )
        return value

    return parse


def attempts_arg(text: str) -> int:
    """A whole number of at least 1."""
    value = whole_arg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


def queue_arg(text: str) -> str:
    """A ``--queue``: what ``conveyor.rules.check_queue_name`` accepts."""
    try:
        return check_queue_name(text, "a queue name")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give a queue such as mail") from None


def name_arg(text: str) -> str:
    """A task ``--name``: 1 to ``MAX_NAME`` characters UTF-8 can encode."""
    if not text or len(text) > MAX_NAME:
        raise argparse.ArgumentTypeError(
            f"a task name must be 1 to {MAX_NAME} characters, not {len(text)};"
            " give one such as emails.send"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"task name {text!r:.80} holds a character UTF-8 cannot encode"
        ) from None
    return text


def text_arg(text: str) -> str:
    """Non-empty text, such as a worker ``--name``."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a non-empty name, or leave the option out")
    return text

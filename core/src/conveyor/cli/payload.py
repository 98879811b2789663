"""Reading task payloads and schedule options given on the command line."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from conveyor.cli.errors import CliError

__all__ = ["QUOTING", "parse_json", "when_arg", "seconds_arg", "whole_arg", "attempts_arg"]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (only finite numbers are)")


QUOTING = """ (strings need double quotes: '"hello"' or '{"to": "a@example.com"}')"""


def parse_json(text: str | bytes, what: str, *, hint: str = "") -> Any:
    """``text`` as a JSON value; ``CliError`` saying where it is malformed (then ``hint``)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise CliError(f"{what} is not valid JSON: {exc.msg} at {where}{hint}") from None
    except (ValueError, RecursionError) as exc:
        raise CliError(f"{what} is not valid JSON: {exc}") from None


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


def seconds_arg(text: str) -> float:
    """A ``--delay`` value: zero or more seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the delay must be zero or more seconds")
    return value


def whole_arg(text: str) -> int:
    """A whole number (may be negative, e.g. a priority)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def attempts_arg(text: str) -> int:
    """A whole number of at least 1."""
    value = whole_arg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value

"""Exponential backoff with full jitter, shared by retries, poll errors and poll strategies."""

from __future__ import annotations

import random

__all__ = ["full_jitter", "exponential"]


def exponential(attempt: int, base: float, cap: float, factor: float = 2.0) -> float:
    """``base * factor ** (attempt - 1)``, never above ``cap`` (``attempt`` counts from 1)."""
    if attempt < 1:
        return min(base, cap)
    # Bound the exponent so huge attempt counts cannot overflow a float.
    return min(cap, base * factor ** min(attempt - 1, 64))


def full_jitter(attempt: int, base: float, cap: float) -> float:
    """A uniformly random delay between 0 and ``exponential(attempt, base, cap)``.

    Full jitter spreads retries of tasks that failed together, so they do not
    come back together.
    """
    return random.uniform(0.0, exponential(attempt, base, cap))

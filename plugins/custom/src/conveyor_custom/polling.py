"""How long a custom backend waits after an empty fetch before fetching again."""

from __future__ import annotations

import asyncio
import random

import attrs

from conveyor import ConfigError

__all__ = ["Backoff", "DEFAULT_MAX_INTERVAL"]

DEFAULT_MAX_INTERVAL = 5.0
"""The longest wait between empty fetches unless configured."""


@attrs.frozen
class Backoff:
    """Wait ``interval`` seconds after the first empty fetch, doubling on each further
    empty fetch up to ``max_interval``, with +-10 % jitter; a fetched task resets it.
    ``max_interval == interval`` polls at a fixed interval."""

    interval: float = 0.5
    max_interval: float = DEFAULT_MAX_INTERVAL

    def __attrs_post_init__(self) -> None:
        if not self.interval > 0:
            raise ConfigError(f"custom poll_interval must be more than 0 s, not {self.interval!r}")
        if not self.max_interval >= self.interval:
            raise ConfigError(
                f"custom poll_max_interval ({self.max_interval!r}) must be at least"
                f" poll_interval ({self.interval!r})"
            )

    def delay(self, empty: int) -> float:
        """The wait after ``empty`` consecutive empty fetches (``empty >= 1``)."""
        base = min(self.max_interval, self.interval * 2.0 ** min(empty - 1, 30))
        return base * random.uniform(0.9, 1.1)

    async def wait(self, empty: int) -> None:
        """Sleep for ``delay(empty)``."""
        await asyncio.sleep(self.delay(empty))

"""Key names: one prefix, queue and worker names escaped as data (see ``tasks.lua``)."""

from __future__ import annotations

import functools
from urllib.parse import quote

import attrs

from conveyor import Status

__all__ = ["Keys", "escape", "glob_escape"]


@functools.lru_cache(maxsize=4096)
def escape(name: str) -> str:
    """``name`` percent-escaped: only ``A-Z a-z 0-9 _ . - ~`` stay, so no ``:``, ``{``,
    ``}`` or glob character of a queue or worker name ever reaches a key."""
    return quote(name, safe="")


def glob_escape(text: str) -> str:
    """``text`` with SCAN/KEYS glob characters backslash-escaped (for the prefix)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@attrs.frozen(slots=True)
class Keys:
    """Every key name the backend uses, under ``prefix``."""

    prefix: str

    @property
    def base(self) -> str:
        """The prefix with its separator: what ``tasks.lua`` calls ``P``."""
        return self.prefix + ":"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:t:{task_id}"

    def queue(self, queue: str) -> str:
        """The key stem of ``queue`` (``qk`` in the script)."""
        return f"{self.prefix}:q:{escape(queue)}:"

    def wake(self, queue: str) -> str:
        return self.queue(queue) + "wake"

    def parked(self, queue: str) -> str:
        """The registrations of workers parked on ``queue``, waiting for a hand-off."""
        return self.queue(queue) + "parked"

    def hand(self, queue: str, worker: str) -> str:
        """Where a push hands worker ``worker`` a task of ``queue`` it claimed for it."""
        return f"{self.queue(queue)}hand:{escape(worker)}"

    def queue_status(self, queue: str, status: Status) -> str:
        return f"{self.queue(queue)}s:{status.value}"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def workers_seen(self) -> str:
        return f"{self.prefix}:workers:seen"

    @property
    def malformed(self) -> str:
        """The hash of task records set aside as unusable: id -> why (see ``tasks.lua``)."""
        return f"{self.prefix}:malformed"

    def held(self, worker: str) -> str:
        return f"{self.prefix}:w:{escape(worker)}:held"

    def finished_channel(self, task_id: str) -> str:
        return f"{self.prefix}:fin:{task_id}"

    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every key of this prefix (glob characters escaped)."""
        return glob_escape(self.prefix) + ":*"

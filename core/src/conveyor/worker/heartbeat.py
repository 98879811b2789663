"""The worker's heartbeat: extend its leases, and bring back dead workers' tasks now and then."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from conveyor.backoff import full_jitter
from conveyor.events import Heartbeat
from conveyor.worker.state import Live, Settings

__all__ = ["beat"]

logger = logging.getLogger("conveyor.worker")


async def beat(settings: Settings, live: Live, hooks: Any, resumes: bool) -> None:
    """Every ``heartbeat_interval``: ``heartbeat``, and (if ``resumes``) ``resume_abandoned``
    every ``resume_interval``. A failure is logged and retried sooner, with backoff."""
    loop = asyncio.get_running_loop()
    name, info = settings.name, settings.info
    next_resume = loop.time() + settings.resume_interval
    failures = 0
    while True:
        if failures:
            delay = full_jitter(failures, settings.error_backoff, settings.heartbeat_interval)
        else:
            delay = settings.heartbeat_interval
        await asyncio.sleep(delay)
        try:
            await hooks.heartbeat(info)
            if resumes and loop.time() >= next_resume:
                next_resume = loop.time() + settings.resume_interval
                count = await hooks.resume_abandoned()
                if count:
                    logger.info("worker %s resumed %d abandoned task(s)", name, count)
        except Exception as exc:
            failures += 1
            live.backend_error("heartbeat failed", exc)
            continue
        failures = 0
        if live.listeners:
            live.emit(Heartbeat(name))

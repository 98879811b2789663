"""The worker's heartbeat: extend its leases, and bring back dead workers' tasks now and then."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from conveyor.backoff import full_jitter
from conveyor.capability import Capability
from conveyor.events import Heartbeat

if TYPE_CHECKING:
    from conveyor.lanes import Lanes

__all__ = ["beat"]

logger = logging.getLogger("conveyor.worker")


async def beat(run: Lanes) -> None:
    """Every ``heartbeat_interval``: ``heartbeat``, and ``resume_abandoned`` every
    ``resume_interval``. A failure is logged and retried sooner, with backoff."""
    worker, hooks = run.worker, run.hooks
    loop = asyncio.get_running_loop()
    resumes = worker.backend.supports(Capability.RESUME_ABANDONED)
    next_resume = loop.time() + worker.resume_interval
    failures = 0
    while True:
        if failures:
            delay = full_jitter(failures, worker.error_backoff, worker.heartbeat_interval)
        else:
            delay = worker.heartbeat_interval
        await asyncio.sleep(delay)
        try:
            await hooks.heartbeat(worker.info)
            if resumes and loop.time() >= next_resume:
                next_resume = loop.time() + worker.resume_interval
                count = await hooks.resume_abandoned()
                if count:
                    logger.info("worker %s resumed %d abandoned task(s)", worker.name, count)
        except Exception as exc:
            failures += 1
            run.backend_error("heartbeat failed", exc)
            continue
        failures = 0
        if worker._listeners:
            worker._emit(Heartbeat(worker.name))

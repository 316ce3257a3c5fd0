"""An in-process scheduler for periodic jobs (retention, notices, sweeps).

Jobs must be idempotent: with several service nodes each runs them, and a job that finds
nothing to do does nothing. A failing run is logged and retried at the next interval;
it never stops the scheduler or the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

JobFn = Callable[[], Awaitable[object]]


@dataclass
class Job:
    name: str
    every: float
    fn: JobFn
    runs: int = 0
    failures: int = 0


class Scheduler:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._tasks: list[asyncio.Task] = []

    def every(self, seconds: float, name: str, fn: JobFn) -> None:
        self.jobs[name] = Job(name, seconds, fn)

    async def run_now(self, name: str) -> object:
        job = self.jobs[name]
        try:
            return await job.fn()
        except Exception:  # noqa: BLE001 - a job's failure is logged, never fatal
            job.failures += 1
            log.exception("job.failed", extra={"job": name})
            return None
        finally:
            job.runs += 1

    async def _loop(self, job: Job) -> None:
        await asyncio.sleep(min(30.0, job.every))  # let the service finish starting
        while True:
            await self.run_now(job.name)
            await asyncio.sleep(job.every)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(j), name=f"job:{j.name}") for j in self.jobs.values()]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


async def repeat(fn: JobFn, every: float, failure: str, logger: logging.Logger = log) -> None:
    """``await fn()`` now and then every ``every`` seconds until cancelled — a worker's own
    loop (the media role's settings syncs), where the scheduler's jobs run in the web role.
    A failing round is logged with ``failure`` and the next one tries again."""
    while True:
        try:
            await fn()
        except Exception:  # noqa: BLE001 - the database may be away a moment; keep going
            logger.exception(failure)
        await asyncio.sleep(every)


def scheduler(ctx) -> Scheduler:
    """The process's scheduler (``ctx.scheduler``), where domains register their jobs."""
    return ctx.scheduler

"""The alarms domain's background work, on web nodes: the outbox dispatcher, and the bus
listener that feeds this node's live streams and wakes the dispatcher for alarms stored
elsewhere (a gateway process). Retention (RET5) is the privacy engine's hourly job, which
reads the tables' declared expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faoyam.alarms import bus, live, outbox
from faoyam.alarms.runtime import runtime
from faoyam.core.context import Context

log = logging.getLogger(__name__)


async def start(ctx: Context) -> None:
    rt = runtime(ctx)
    if "web" not in ctx.roles:
        return

    async def on_bus(event: dict) -> None:
        rt.wake()
        await live.fan_out(ctx, event, None)

    bus.listen(ctx, on_bus)
    rt.dispatcher = asyncio.create_task(outbox.run(ctx), name="alarms-dispatcher")


async def stop(ctx: Context) -> None:
    rt = ctx.alarms
    if rt is None:
        return
    task, rt.dispatcher = rt.dispatcher, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    http, rt.http = rt.http, None
    if http is not None:
        await http.aclose()

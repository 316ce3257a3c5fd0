"""Live in-app updates (server-sent events): each open Messages page holds a queue on its
node; a stored alarm is put on the queues of the people it is for. Alarms stored on other
nodes arrive over the bus (``alarms.bus``) and are matched to recipients with one query."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from faoyam.alarms.models import AlarmMessage
from faoyam.alarms.runtime import runtime

QUEUE_SIZE = 100


def subscribe(ctx, user_id: str) -> asyncio.Queue:
    q: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
    runtime(ctx).listeners.setdefault(user_id, set()).add(q)
    return q


def unsubscribe(ctx, user_id: str, q: asyncio.Queue) -> None:
    rt = runtime(ctx)
    qs = rt.listeners.get(user_id)
    if qs is not None:
        qs.discard(q)
        if not qs:
            rt.listeners.pop(user_id, None)


async def fan_out(ctx, event: dict, user_ids: list[str] | None) -> None:
    """Put ``event`` on the live queues of its recipients on this node (once per alarm)."""
    rt = runtime(ctx)
    if not rt.first_time(event["alarm_id"]) or not rt.listeners:
        return
    if user_ids is None:  # from the bus: who is it for, among those listening here?
        async with ctx.db.session() as s:
            user_ids = list((await s.execute(select(AlarmMessage.user_id).where(
                AlarmMessage.alarm_id == event["alarm_id"],
                AlarmMessage.user_id.in_(list(rt.listeners))))).scalars())
    for user_id in user_ids:
        for q in list(rt.listeners.get(user_id, ())):
            if not q.full():  # a stalled page misses live items; it reloads the list
                q.put_nowait(event)

"""The dispatcher: delivers the outbox rows ``raise_alarm`` wrote with the event (B11).

A round claims due rows (``status = pending``, ``next_at`` passed) by moving their
``next_at`` a lease ahead — on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so several web
nodes share the work — then sends them concurrently and writes each outcome:

* sent: ``status = sent``, ``sent_at``;
* the recipient is gone for good (no subscription left, a push endpoint answering 404 or
  410 — that subscription is deleted —, no email address, the callback switched off):
  ``status = dropped``;
* anything else (SMTP down, a push service's 5xx, a timeout): tried again after
  1, 2, 4 … seconds (at most an hour), ``failed`` after ``MAX_ATTEMPTS``.

A node that dies mid-round leaves its rows claimed until the lease ends; then another
round takes them (delivery is at least once). The dispatcher runs on web nodes, woken at
once by a local alarm or one on the bus, and every second anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import delete, select, update

from faoyam.accounts import service as accounts
from faoyam.alarms import links, push, texts, webhook
from faoyam.alarms.models import AlarmDelivery, AlarmEvent, AlarmMessage, AlarmWebhook, PushSubscription
from faoyam.alarms.runtime import CHANNELS, runtime
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.devices import service as devices

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)
MAX_ATTEMPTS = 12
BATCH = 200
CONCURRENCY = 16  # a share of the database pool (30): the gateway workers need theirs
POLL_SECONDS = 1.0


@dataclass
class Job:
    id: str
    channel: str
    attempts: int
    user_id: str
    alarm_id: str
    device_id: str
    channel_index: int
    kind: str
    at: dt.datetime
    snapshot_key: str | None


class Gone(Exception):
    """The recipient of this delivery does not exist any more: drop it, do not retry."""


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(2 ** max(0, attempts - 1), 3600))


def http_client(ctx: Context) -> httpx.AsyncClient:
    rt = runtime(ctx)
    if rt.http is None:
        rt.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0),
                                    limits=httpx.Limits(max_connections=CONCURRENCY))
    return rt.http  # type: ignore[return-value]


async def _claim(ctx: Context, limit: int, channel: str | None) -> list[Job]:
    now = utcnow()
    q = (select(AlarmDelivery.id, AlarmDelivery.channel, AlarmDelivery.attempts, AlarmMessage.user_id,
                AlarmEvent.id.label("alarm_id"), AlarmEvent.device_id, AlarmEvent.channel.label("channel_index"),
                AlarmEvent.kind, AlarmEvent.at, AlarmEvent.snapshot_key)
         .join(AlarmMessage, AlarmMessage.id == AlarmDelivery.message_id)
         .join(AlarmEvent, AlarmEvent.id == AlarmMessage.alarm_id)
         .where(AlarmDelivery.status == "pending", AlarmDelivery.next_at <= now)
         .order_by(AlarmDelivery.next_at).limit(limit))
    if channel is not None:
        q = q.where(AlarmDelivery.channel == channel)
    if ctx.db.engine.dialect.name == "postgresql":
        q = q.with_for_update(of=AlarmDelivery, skip_locked=True)
    async with ctx.db.transaction() as s:
        rows = (await s.execute(q)).all()
        if rows:
            await s.execute(update(AlarmDelivery).where(AlarmDelivery.id.in_([r.id for r in rows]))
                            .values(next_at=now + LEASE, attempts=AlarmDelivery.attempts + 1))
    return [Job(**r._asdict()) for r in rows]


async def dispatch_once(ctx: Context, limit: int = BATCH, channel: str | None = None) -> int:
    """One round: claim up to ``limit`` due deliveries (of ``channel``, or all), send them,
    record the outcomes."""
    jobs = await _claim(ctx, limit, channel)
    if not jobs:
        return 0
    audiences: dict[str, object] = {}
    for device_id in {j.device_id for j in jobs}:
        audiences[device_id] = await devices.alarm_audience(ctx, device_id)
    # What the round's recipients need, read once for the round (not per delivery).
    users = {j.user_id for j in jobs}
    async with ctx.db.session() as s:
        briefs = await accounts.user_briefs(s, users)
        subs: dict[str, list] = {}
        for sub in (await s.execute(select(PushSubscription).where(PushSubscription.user_id.in_(users)))).scalars():
            subs.setdefault(sub.user_id, []).append(sub)
        hooks = {h.user_id: h for h in (await s.execute(select(AlarmWebhook).where(
            AlarmWebhook.user_id.in_(users)))).scalars()}
    round_ = _Round(audiences, briefs, subs, hooks)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Job) -> tuple[Job, str, str | None]:
        async with sem:
            try:
                await _deliver(ctx, job, round_)
                return job, "sent", None
            except Gone as exc:
                return job, "dropped", str(exc)[:200]
            except Exception as exc:  # noqa: BLE001 - any failure is retried (the recipient never logged)
                return job, "retry", type(exc).__name__

    outcomes = await asyncio.gather(*(one(j) for j in jobs))
    now = utcnow()
    async with ctx.db.transaction() as s:
        for job, outcome, error in outcomes:
            attempts = job.attempts + 1
            if outcome == "sent":
                values = {"status": "sent", "sent_at": now, "last_error": None}
            elif outcome == "dropped":
                values = {"status": "dropped", "last_error": error}
            elif attempts >= MAX_ATTEMPTS:
                values = {"status": "failed", "last_error": error}
            else:
                values = {"next_at": now + backoff(attempts), "last_error": error}
            await s.execute(update(AlarmDelivery).where(AlarmDelivery.id == job.id).values(**values))
    rt = runtime(ctx)
    for job, outcome, error in outcomes:
        rt.stats[f"delivery.{job.channel}.{outcome}"] += 1
        if outcome != "sent":
            log.info("alarms.delivery_not_sent", extra={"channel": job.channel, "outcome": outcome, "error": error})
    return len(jobs)


def _payload(ctx: Context, job: Job, audience) -> dict:
    name = getattr(audience, "name", "") or ""
    channel_name = (getattr(audience, "channels", {}) or {}).get(job.channel_index)
    at = job.at.astimezone(dt.UTC).isoformat()
    return {"alarm_id": job.alarm_id, "device_id": job.device_id, "channel": job.channel_index, "kind": job.kind,
            "at": at, "device_name": name, "channel_name": channel_name,
            "snapshot_url": links.snapshot_link(ctx.key, ctx.settings.base_url, job.alarm_id, job.user_id)
            if job.snapshot_key else None,
            "clip_url": links.clip_link(job.device_id, job.channel_index, at), "url": "/messages"}


@dataclass
class _Round:
    audiences: dict
    briefs: dict
    subs: dict
    hooks: dict


async def _deliver(ctx: Context, job: Job, r: _Round) -> None:
    body = _payload(ctx, job, r.audiences.get(job.device_id))
    user = r.briefs.get(job.user_id)
    if user is None:
        raise Gone("no such account")
    if job.channel == "push":
        await _push(ctx, job, body, user, r.subs.get(job.user_id, []))
    elif job.channel == "email":
        await _email(ctx, job, body, user)
    elif job.channel == "webhook":
        await _webhook(ctx, job, body, r.hooks.get(job.user_id))
    else:
        raise Gone(f"unknown channel {job.channel}")


async def _push(ctx: Context, job: Job, body: dict, user, subs: list) -> None:
    if not subs:
        raise Gone("no push subscription")
    body = {**body, "title": texts.label(job.kind, user.language), "body": body["device_name"]}
    payload = json.dumps(body, separators=(",", ":")).encode()
    key = push.vapid_key(ctx.settings.data_dir / "vapid.pem")
    subject = f"mailto:{ctx.settings.dpo_email}"
    http = http_client(ctx)
    gone, retry = [], None
    for sub in subs:
        status = await push.send(http, key, subject, sub.endpoint, sub.p256dh, sub.auth, payload)
        for fn in runtime(ctx).observers:
            fn("push", job.alarm_id, status, time.perf_counter())
        if status in (404, 410):
            gone.append(sub.id)
        elif not 200 <= status < 300:
            retry = f"push {status}"
    if gone:
        async with ctx.db.transaction() as s:
            await s.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
    if retry:
        raise RuntimeError(retry)
    if len(gone) == len(subs):
        raise Gone("push endpoints gone")


async def _email(ctx: Context, job: Job, body: dict, user) -> None:
    if not user.email:
        raise Gone("no email address")
    what = texts.label(job.kind, user.language)
    lines = [f"{what}: {body['device_name']}" + (f" · {body['channel_name']}" if body["channel_name"] else ""),
             f"{body['at']}", "", f"{ctx.settings.base_url.rstrip('/')}{body['clip_url']}"]
    attachments = []
    if job.snapshot_key:
        attachments.append(("alarm.jpg", await ctx.blobs.read(job.snapshot_key), "image/jpeg"))
        lines.append(body["snapshot_url"])
    await ctx.messenger.send_email(user.email, f"{what} — {body['device_name']}", "\n".join(lines),
                                   template="alarm", user_id=job.user_id, attachments=attachments)


async def _webhook(ctx: Context, job: Job, body: dict, hook) -> None:
    if hook is None or hook.status != "on":
        raise Gone("callback off")
    status = await webhook.send(http_client(ctx), hook.url, webhook.body(
        kind=job.kind, device_id=job.device_id, channel=job.channel_index, device_name=body["device_name"],
        channel_name=body["channel_name"], at=job.at, alarm_id=job.alarm_id, token=hook.token,
        snapshot_url=body["snapshot_url"]))
    if not 200 <= status < 300:
        raise RuntimeError(f"callback {status}")


async def run(ctx: Context, poll: float = POLL_SECONDS) -> None:
    """Dispatch for ever, one loop per channel: at once when woken, else every ``poll`` s."""
    await asyncio.gather(*(_loop(ctx, c, poll) for c in CHANNELS))


async def _loop(ctx: Context, channel: str, poll: float) -> None:
    wake = runtime(ctx).wakes[channel]
    while True:
        try:
            await asyncio.wait_for(wake.wait(), poll)
        except TimeoutError:
            pass
        wake.clear()
        try:
            while await dispatch_once(ctx, channel=channel) >= BATCH:
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the rows stay in the outbox; the next round retries
            log.exception("alarms.dispatch_failed", extra={"channel": channel})

"""Share links (B9): live view for someone without an account, for a limited time.

The owner gets the token once; only its keyed hash is stored, so a database leak hands
out no live links. A link shows live view of the channels it names, and nothing else —
no playback, alarms or control. It stops working when it expires (and the retention job
deletes it), when the owner revokes it, or when the device leaves the account.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import delete, func, select

from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Conflict, Gone, NotFound
from faoyam.core.security import keyed_hash, new_token
from faoyam.devices import authz
from faoyam.devices import validation as v
from faoyam.devices.models import Channel, Device, ShareLink
from faoyam.devices.schemas import PublicChannel, PublicLinkOut, ShareLinkCreated, ShareLinkIn, ShareLinkOut
from faoyam.devices.sharing import check_channels

MAX_LINKS_PER_DEVICE = 20
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")


class LinkNotFound(NotFound):
    code, title = "link-not-found", "This link does not work"


def _hash(ctx: Context, token: str) -> str:
    return keyed_hash(ctx.key, f"share-link:{token}")


def _out(row: ShareLink) -> ShareLinkOut:
    return ShareLinkOut(id=row.id, label=row.label, channels=row.channels, created_at=row.created_at, expires_at=row.expires_at)


async def create_link(ctx: Context, user_id: str, device_id: str, data: ShareLinkIn) -> ShareLinkCreated:
    await authz.require(ctx, user_id, device_id, "manage")
    channels = await check_channels(ctx, device_id, data.channels)
    label = v.normalize_name(data.label, "label") if data.label is not None else None
    token = new_token(32)
    now = utcnow()
    async with ctx.db.transaction() as s:
        n = await s.scalar(select(func.count()).select_from(ShareLink).where(
            ShareLink.device_id == device_id, ShareLink.expires_at > now))
        if n >= MAX_LINKS_PER_DEVICE:
            raise Conflict(f"A device can have at most {MAX_LINKS_PER_DEVICE} active links. Revoke one first.",
                           code="too-many-links")
        row = ShareLink(device_id=device_id, token_hash=_hash(ctx, token), label=label, channels=channels,
                        created_at=now, expires_at=now + dt.timedelta(hours=data.hours))
        s.add(row)
    api_url = f"{ctx.settings.base_url.rstrip('/')}/api/v1/share-links/{token}"
    return ShareLinkCreated(**_out(row).model_dump(), token=token, api_url=api_url)


async def list_links(ctx: Context, user_id: str, device_id: str) -> list[ShareLinkOut]:
    await authz.require(ctx, user_id, device_id, "manage")
    async with ctx.db.session() as s:
        rows = (await s.execute(select(ShareLink).where(ShareLink.device_id == device_id, ShareLink.expires_at > utcnow())
                                .order_by(ShareLink.created_at))).scalars().all()
    return [_out(r) for r in rows]


async def revoke_link(ctx: Context, user_id: str, device_id: str, link_id: str) -> None:
    await authz.require(ctx, user_id, device_id, "manage")
    async with ctx.db.transaction() as s:
        res = await s.execute(delete(ShareLink).where(ShareLink.id == link_id, ShareLink.device_id == device_id))
        if res.rowcount == 0:
            raise LinkNotFound("There is no such link.")


async def view_link(ctx: Context, token: str) -> PublicLinkOut:
    """What the holder of a link may see. Unknown and revoked links look the same."""
    if not _TOKEN_RE.fullmatch(token or ""):
        raise LinkNotFound("This link does not work. Ask for a new one.")
    async with ctx.db.session() as s:
        row = (await s.execute(select(ShareLink, Device).join(Device, Device.id == ShareLink.device_id)
                               .where(ShareLink.token_hash == _hash(ctx, token)))).first()
        if row is None or row.Device.owner_id is None:
            raise LinkNotFound("This link does not work. Ask for a new one.")
        link, dev = row.ShareLink, row.Device
        if link.expires_at <= utcnow():
            raise Gone("This link has expired. Ask for a new one.", code="link-expired")
        q = select(Channel).where(Channel.device_id == dev.id).order_by(Channel.index)
        if link.channels is not None:
            q = q.where(Channel.index.in_(link.channels))
        channels = (await s.execute(q)).scalars().all()
    return PublicLinkOut(
        device_name=dev.name, kind=dev.kind, online=dev.online, permissions=["live"], expires_at=link.expires_at,
        # The media engine fills in live_url when it serves links (null until then).
        channels=[PublicChannel(index=c.index, name=c.name, live_url=None) for c in channels],
    )


# Live view through a link (the media engine's questions) --------------------------------


async def live_link(ctx: Context, token: str, channel: int) -> tuple[str, str]:
    """(link id, device id) of a link that currently allows live view of ``channel``;
    LinkNotFound for an unknown or revoked link or a channel it does not name, Gone when expired."""
    if not _TOKEN_RE.fullmatch(token or ""):
        raise LinkNotFound("This link does not work. Ask for a new one.")
    async with ctx.db.session() as s:
        row = (await s.execute(select(ShareLink, Device.owner_id).join(Device, Device.id == ShareLink.device_id)
                               .where(ShareLink.token_hash == _hash(ctx, token)))).first()
    if row is None or row.owner_id is None or not _names_channel(row.ShareLink, channel):
        raise LinkNotFound("This link does not work. Ask for a new one.")
    if row.ShareLink.expires_at <= utcnow():
        raise Gone("This link has expired. Ask for a new one.", code="link-expired")
    return row.ShareLink.id, row.ShareLink.device_id


async def link_allows_live(ctx: Context, link_id: str, device_id: str, channel: int) -> bool:
    """Whether the link still exists, has not expired, belongs to a bound device and names
    ``channel`` — the media worker asks this about its open sessions twice a second."""
    async with ctx.db.session() as s:
        row = (await s.execute(select(ShareLink, Device.owner_id).join(Device, Device.id == ShareLink.device_id)
                               .where(ShareLink.id == link_id, ShareLink.device_id == device_id))).first()
    return (row is not None and row.owner_id is not None and row.ShareLink.expires_at > utcnow()
            and _names_channel(row.ShareLink, channel))


def _names_channel(link: ShareLink, channel: int) -> bool:
    return link.channels is None or channel in link.channels

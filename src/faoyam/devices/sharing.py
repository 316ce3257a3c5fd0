"""Device sharing (B9): the owner invites another account by email or phone, with some
permissions, on the whole device or some channels; the invitee accepts or declines;
the owner revokes and the invitee leaves at any time.

People are found through the accounts domain's public functions only. Sharing by phone
number is offered only where the policy allows it — the owner's and the invitee's
countries must both be in ``settings.phone_share_countries`` (configuration, not code).
A declined, revoked or left share is deleted, not kept.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from faoyam.accounts.service import UserBrief, find_user_by_contact, get_user_brief, user_briefs
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Conflict, Invalid, NotFound
from faoyam.devices import authz
from faoyam.devices.models import Channel, Device, Share
from faoyam.devices.schemas import IncomingShareOut, Invitee, ShareIn, ShareOut, SharePatchIn

MAX_SHARES_PER_DEVICE = 20
_INVITES_PER_HOUR = 30  # also limits probing which addresses have accounts
_HOUR = dt.timedelta(hours=1)


class ShareNotFound(NotFound):
    code, title = "share-not-found", "No such share"


async def check_channels(ctx: Context, device_id: str, channels: list[int] | None) -> list[int] | None:
    """None (the whole device) or a non-empty list of the device's own channel indexes."""
    if channels is None:
        return None
    wanted = sorted(set(channels))
    if not wanted:
        raise Invalid("channels", "Choose at least one channel, or null for the whole device.", code="invalid-channels")
    async with ctx.db.session() as s:
        have = set((await s.execute(select(Channel.index).where(Channel.device_id == device_id))).scalars())
    missing = [c for c in wanted if c not in have]
    if missing:
        raise Invalid("channels", f"The device has no channel {missing[0]}.", code="invalid-channels")
    return wanted


def _phone_share_refused(ctx: Context) -> Invalid:
    countries = ", ".join(sorted(ctx.settings.phone_share_countries)) or "no country"
    return Invalid("contact", f"Sharing by phone number is offered only in {countries}. Use an email address.",
                   code="phone-share-unavailable")


async def _find_invitee(ctx: Context, owner: UserBrief, contact: str) -> tuple[UserBrief, str]:
    kind = "email" if "@" in contact else "phone"
    allowed = set(ctx.settings.phone_share_countries)
    if kind == "phone" and owner.country not in allowed:
        raise _phone_share_refused(ctx)
    try:
        invitee = await find_user_by_contact(ctx, contact, owner.country)
    except Invalid:
        raise Invalid("contact", "This is not a valid email address or phone number.", code="invalid-contact") from None
    if invitee is None:
        raise NotFound("No account uses this email address or phone number. Ask them to register first.",
                       code="no-account")
    if kind == "phone" and invitee.country not in allowed:
        raise _phone_share_refused(ctx)
    if invitee.id == owner.id:
        raise Invalid("contact", "This is your own account.", code="self-share")
    return invitee, kind


def _invitee_out(brief: UserBrief | None, share: Share) -> Invitee:
    if brief is None:
        return Invitee(user_id=share.invitee_id, nickname="", contact=None)
    contact = brief.email if share.invited_via == "email" else brief.phone
    return Invitee(user_id=brief.id, nickname=brief.nickname, contact=contact or brief.email or brief.phone)


def _share_out(share: Share, brief: UserBrief | None) -> ShareOut:
    return ShareOut(id=share.id, device_id=share.device_id, invitee=_invitee_out(brief, share),
                    permissions=list(share.permissions), channels=share.channels, status=share.status,
                    created_at=share.created_at, accepted_at=share.accepted_at)


# The owner's side --------------------------------------------------------------------------


async def share_device(ctx: Context, user_id: str, device_id: str, data: ShareIn) -> ShareOut:
    """Invite an account to a device. The invitee sees it once they accept."""
    await authz.require(ctx, user_id, device_id, "manage")
    channels = await check_channels(ctx, device_id, data.channels)
    owner = await get_user_brief(ctx, user_id)
    await ctx.limiter.hit("device-share-invite", user_id, _INVITES_PER_HOUR, _HOUR)
    invitee, kind = await _find_invitee(ctx, owner, data.contact.strip())
    try:
        async with ctx.db.transaction() as s:
            if await s.scalar(select(Share.id).where(Share.device_id == device_id, Share.invitee_id == invitee.id)):
                raise Conflict("This device is already shared with this account.", code="already-shared")
            n = await s.scalar(select(func.count()).select_from(Share).where(Share.device_id == device_id))
            if n >= MAX_SHARES_PER_DEVICE:
                raise Conflict(f"A device can be shared with at most {MAX_SHARES_PER_DEVICE} accounts.",
                               code="too-many-shares")
            share = Share(device_id=device_id, invitee_id=invitee.id, invited_via=kind,
                          permissions=sorted(set(data.permissions)), channels=channels, status="pending",
                          created_at=utcnow())
            s.add(share)
    except IntegrityError:
        raise Conflict("This device is already shared with this account.", code="already-shared") from None
    return _share_out(share, invitee)


async def list_shares(ctx: Context, user_id: str, device_id: str) -> list[ShareOut]:
    """Whom the device is shared with, and how (the owner's view, B9)."""
    await authz.require(ctx, user_id, device_id, "manage")
    async with ctx.db.session() as s:
        rows = (await s.execute(select(Share).where(Share.device_id == device_id).order_by(Share.created_at))).scalars().all()
        briefs = await user_briefs(s, (r.invitee_id for r in rows))
    return [_share_out(r, briefs.get(r.invitee_id)) for r in rows]


async def _owned_share(s, device_id: str, share_id: str) -> Share:
    row = (await s.execute(select(Share).where(Share.id == share_id, Share.device_id == device_id))).scalar_one_or_none()
    if row is None:
        raise ShareNotFound("This device is not shared that way.")
    return row


async def update_share(ctx: Context, user_id: str, device_id: str, share_id: str, patch: SharePatchIn) -> ShareOut:
    """Change a share's permissions or channels (``channels: null`` — the whole device)."""
    await authz.require(ctx, user_id, device_id, "manage")
    fields = patch.model_fields_set
    if not fields:
        raise Invalid("body", "Send permissions or channels.", code="nothing-to-change")
    if "permissions" in fields and patch.permissions is None:
        raise Invalid("permissions", "Choose at least one permission.", code="invalid")
    channels = await check_channels(ctx, device_id, patch.channels) if "channels" in fields else None
    async with ctx.db.transaction() as s:
        row = await _owned_share(s, device_id, share_id)
        if "permissions" in fields:
            row.permissions = sorted(set(patch.permissions))
        if "channels" in fields:
            row.channels = channels
    return _share_out(row, await get_user_brief(ctx, row.invitee_id))


async def revoke_share(ctx: Context, user_id: str, device_id: str, share_id: str) -> None:
    await authz.require(ctx, user_id, device_id, "manage")
    async with ctx.db.transaction() as s:
        await s.delete(await _owned_share(s, device_id, share_id))


# The invitee's side ---------------------------------------------------------------------


async def incoming_shares(ctx: Context, user_id: str) -> list[IncomingShareOut]:
    """Invitations waiting for an answer and shares accepted, with who shared them."""
    async with ctx.db.session() as s:
        rows = (await s.execute(
            select(Share, Device).join(Device, Device.id == Share.device_id)
            .where(Share.invitee_id == user_id, Device.owner_id.is_not(None)).order_by(Share.created_at))).all()
        briefs = await user_briefs(s, (dev.owner_id for _, dev in rows))
    out = []
    for share, dev in rows:
        owner = briefs.get(dev.owner_id)
        out.append(IncomingShareOut(id=share.id, device_id=dev.id, device_name=dev.name, device_kind=dev.kind,
                                    shared_by=owner.nickname if owner else "", permissions=list(share.permissions),
                                    channels=share.channels, status=share.status, created_at=share.created_at))
    return out


async def _my_share(s, user_id: str, share_id: str) -> Share:
    row = (await s.execute(select(Share).where(Share.id == share_id, Share.invitee_id == user_id))).scalar_one_or_none()
    if row is None:
        raise ShareNotFound("There is no such invitation.")
    return row


async def accept_share(ctx: Context, user_id: str, share_id: str) -> IncomingShareOut:
    async with ctx.db.transaction() as s:
        row = await _my_share(s, user_id, share_id)
        if row.status != "accepted":
            row.status, row.accepted_at = "accepted", utcnow()
    for item in await incoming_shares(ctx, user_id):
        if item.id == share_id:
            return item
    raise ShareNotFound("There is no such invitation.")


async def decline_share(ctx: Context, user_id: str, share_id: str) -> None:
    """Say no to an invitation: it is deleted, nothing about it is kept."""
    await leave_share(ctx, user_id, share_id)


async def leave_share(ctx: Context, user_id: str, share_id: str) -> None:
    """Stop seeing a device shared with you."""
    async with ctx.db.transaction() as s:
        res = await s.execute(delete(Share).where(Share.id == share_id, Share.invitee_id == user_id))
        if res.rowcount == 0:
            raise ShareNotFound("There is no such invitation.")

"""Who a media token was minted for, and whether they may still watch.

A token's ``grant`` (see :mod:`faoyam.media.tokens`) is an opaque string to the media
worker; this module is the one place that knows its forms and asks the devices domain:

* ``user:<user id>`` — the owner, or an invitee whose accepted share has the ``live``
  permission on the channel (``devices.authz.access``);
  a ``talk`` token needs ``control`` (``DEVICE_PERMISSION``);
* ``link:<link id>`` — a share link that still exists, has not expired and names the
  channel (``devices.links.link_allows_live``).

:func:`devices_revocation` is the ``revoked`` callable the live server polls: a share
revoked, a permission taken away, a link deleted or expired, a device unbound — each ends
the sessions it allowed within a poll interval.
"""

from __future__ import annotations

from faoyam.core.context import Context
from faoyam.devices import authz
from faoyam.devices.links import link_allows_live
from faoyam.devices.talkback import TALK_PERMISSION
from faoyam.media.live_http import Revoked
from faoyam.media.tokens import MediaGrant


# A media permission that is not a devices permission of the same name: talking back
# through a doorbell needs "control" (devices.talkback).
DEVICE_PERMISSION = {"talk": TALK_PERMISSION}


def user_grant(user_id: str) -> str:
    return f"user:{user_id}"


def link_grant(link_id: str) -> str:
    return f"link:{link_id}"


async def still_allowed(ctx: Context, grant: MediaGrant) -> bool:
    """Whether the viewer behind ``grant`` may still have ``grant.permission`` on its channel."""
    kind, _, ref = grant.grant.partition(":")
    device_id, channel = grant.channel.device_id, grant.channel.channel
    if kind == "user":
        acc = await authz.access(ctx, ref, device_id)
        need = DEVICE_PERMISSION.get(grant.permission, grant.permission)
        return acc is not None and need in acc.permissions and acc.sees_channel(channel)
    if kind == "link":
        return grant.permission == "live" and await link_allows_live(ctx, ref, device_id, channel)
    return False


def devices_revocation(ctx: Context) -> Revoked:
    async def revoked(grant: MediaGrant) -> bool:
        return not await still_allowed(ctx, grant)

    return revoked

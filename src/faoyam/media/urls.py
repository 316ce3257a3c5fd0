"""Media URLs a viewer is handed: one place that knows their shape.

The web app's routes (and, later, the Imou-compatible API) decide *who* may watch; these
functions only mint the signed token (:mod:`faoyam.media.tokens`) for that viewer and put
it in the media worker's address. ``base`` is where the viewer reaches the worker, as
``http(s)://host:port`` or ``ws(s)://host:port`` — each URL gets the scheme its protocol
needs.
"""

from __future__ import annotations

from faoyam.media.hls_access import HLS, PLAYBACK, SNAPSHOT
from faoyam.media.ids import ChannelId
from faoyam.media.tokens import mint


def _scheme(base: str, secure: str, plain: str) -> str:
    base = base.rstrip("/")
    for prefix in ("https://", "wss://"):
        if base.startswith(prefix):
            return f"{secure}://{base[len(prefix):]}"
    for prefix in ("http://", "ws://"):
        if base.startswith(prefix):
            return f"{plain}://{base[len(prefix):]}"
    return base


def http_base(base: str) -> str:
    return _scheme(base, "https", "http")


def ws_base(base: str) -> str:
    return _scheme(base, "wss", "ws")


def live_url(secret_key: bytes, base: str, channel: ChannelId, grant: str, ttl: float) -> str:
    """The one-use WebSocket URL (fMP4 for Media Source Extensions)."""
    return f"{ws_base(base)}/media/live/{mint(secret_key, channel, grant, ttl=ttl)}"


def talk_url(secret_key: bytes, base: str, channel: ChannelId, grant: str, ttl: float) -> str:
    """The one-use WebSocket URL a browser talks through to a doorbell (permission ``talk``,
    ``media/talk.py``)."""
    return f"{ws_base(base)}/media/talk/{mint(secret_key, channel, grant, permission='talk', ttl=ttl)}"


def hls_urls(secret_key: bytes, base: str, channel: ChannelId, grant: str, ttl: float) -> dict[str, str]:
    """``url``: the master playlist (LL-HLS, one variant with codecs and resolution);
    ``plain_url``: the same segments without part tags, for old clients. One token for both:
    it must be first used within ``ttl`` and then stays valid while the player keeps using it."""
    token = mint(secret_key, channel, grant, permission=HLS, ttl=ttl)
    prefix = f"{http_base(base)}/media/hls/{token}"
    return {"url": f"{prefix}/master.m3u8", "plain_url": f"{prefix}/plain.m3u8"}


def snapshot_url(secret_key: bytes, base: str, channel: ChannelId, grant: str, ttl: float) -> str:
    """The stream's latest keyframe as JPEG (``?width=`` to scale)."""
    token = mint(secret_key, channel, grant, permission=SNAPSHOT, ttl=ttl)
    return f"{http_base(base)}/media/snapshot/{token}.jpg"


def playback_urls(secret_key: bytes, base: str, channel: ChannelId, grant: str, ttl: float) -> dict[str, str]:
    """Recorded video of ``channel`` (permission ``playback``, ``media/playback.py``): ``stream``,
    the WebSocket for the MSE player (add ``?at=<unix ms>``), and ``base``, under which
    ``vod.m3u8``, ``clip.mp4``, ``thumb.jpg`` and ``seg/…`` are. One token: first used within
    ``ttl``, then valid while the page keeps using it."""
    token = mint(secret_key, channel, grant, permission=PLAYBACK, ttl=ttl)
    return {"stream": f"{ws_base(base)}/media/playback/{token}/stream",
            "base": f"{http_base(base)}/media/playback/{token}"}

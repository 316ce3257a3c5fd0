"""Which stream a browser viewer gets: the camera's own, its H.264 sub-stream, or a transcode.

Chromium's Media Source refuses HEVC (``../shared/design/FACTS.md``), so a camera whose main
stream is H.265 cannot be shown as it is there. :func:`browser_stream` decides, per viewer,
from what the device reports about its streams (``devices.channel_streams``) and what the
player says it can play (``MediaSource.isTypeSupported`` of ``hvc1``/``hev1``):

1. the stream asked for, when its codec plays in this browser (H.264, or HEVC for a browser
   that supports it, e.g. Safari) or is not known yet — the player then reports back if the
   codec turns out unplayable (``fallback``);
2. else the camera's **H.264 sub-stream**, where it has one: no decoding anywhere;
3. else a **transcoded** stream ``<stream>.h264`` (``media.transcode``): H.265 → H.264 in
   the media worker, only while such a viewer watches — of the H.265 sub-stream when the
   camera has one (a small picture is several times cheaper to decode, and the transcode is
   scaled down to sub-stream size anyway), else of the main stream.

The answer is a stream name for the media token (``main``, ``sub``, ``main.h264``); the
token binds the viewer to it, so nobody can open a transcode the web app did not choose.
"""

from __future__ import annotations

from collections.abc import Mapping

from faoyam.media.transcode import TRANSCODED_SUFFIX

PLAYS_EVERYWHERE = "h264"


def browser_stream(requested: str, codecs: Mapping[str, str | None], *, hevc: bool,
                   fallback: bool = False) -> str:
    """The stream to mint a live URL for.

    ``requested``: ``main`` or ``sub``; ``codecs``: the channel's streams and their codecs as
    the device reports them (``{"main": "h265", "sub": "h264"}``; a stream it does not have is
    absent, an unknown codec is None); ``hevc``: the browser plays HEVC; ``fallback``: the
    player was sent ``requested`` and could not play it (the report was wrong or missing).
    """
    codec = codecs.get(requested)
    if not fallback and (codec != "h265" or hevc):
        return requested
    if requested == "main":
        sub = codecs.get("sub")
        if sub == PLAYS_EVERYWHERE:
            return "sub"
        if sub == "h265":
            return "sub" + TRANSCODED_SUFFIX
    return requested + TRANSCODED_SUFFIX

"""The media worker's one HTTP server for viewers: live WebSocket, LL-HLS and snapshots.

One Starlette app on ``media_http_host:media_http_port`` composes:

* ``/media/live/{token}`` — fMP4 over WebSocket (:class:`~faoyam.media.live_http.LiveServer`,
  one-use tokens, permission ``live``);
* ``/media/hls/{token}/master.m3u8`` (and ``playlist.m3u8``, ``plain.m3u8``, ``init/…``,
  ``part/…``, ``segment/…``) — LL-HLS and plain HLS (:mod:`~faoyam.media.hls_routes`),
  tokens with permission ``hls`` checked on every request (:mod:`~faoyam.media.hls_access`);
  a stream's HLS output starts with its first request and stops ``hls_idle`` seconds after
  its last (:class:`~faoyam.media.hls.HlsOutputs`);
* ``/media/snapshot/{token}.jpg`` — the stream's latest keyframe as JPEG, permission
  ``snapshot`` (:class:`~faoyam.media.snapshot.Snapshots`; a stream that is not running is
  asked to start and the first keyframe waited for, up to ``snapshot_wait`` seconds);

* whatever ``endpoints`` adds (the worker gives talk-back, ``media/talk.py``: their routes
  go in before the live catch-all, and they are closed with the rest);

and, when given a ``store``, the :class:`~faoyam.media.snapshot_keeper.SnapshotKeeper` that
keeps each running channel's last picture for Home.

Every part asks the devices domain the same question through ``revoked`` (a share or link
withdrawn): the WebSocket sessions are polled, the HTTP requests re-checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from faoyam.media.hls import HlsOutputs
from faoyam.media.hls_access import MediaAccess
from faoyam.media.hls_routes import hls_app, snapshot_app
from faoyam.media.hub import StreamHubs
from faoyam.media.live_http import LiveServer, Revoked
from faoyam.media.snapshot import Snapshots
from faoyam.media.snapshot_keeper import SnapshotKeeper, Store


def _any_origin(app):
    """HLS and snapshots readable from any page (hls.js on the web app's origin, a TV app's
    web view): no cookies are involved — the token in the URL is the whole authorization,
    and whoever holds the URL could fetch it anyway."""
    return CORSMiddleware(app, allow_origins=["*"], allow_methods=["GET"], max_age=600)


class Endpoints(Protocol):
    """More routes for the worker's server, with what ends their sessions."""

    routes: list[Any]

    async def close(self) -> None: ...


class ViewerHttp:
    """Everything a viewer reaches on the media worker; ``app`` is the ASGI app to serve."""

    def __init__(self, hubs: StreamHubs, secret_key: bytes, *, revoked: Revoked | None = None,
                 hls_idle: float = 30.0, snapshot_wait: float = 5.0, store: Store | None = None,
                 snapshot_interval: float = 180.0, snapshot_scan: float | None = None,
                 endpoints: Sequence[Endpoints] = (), **live_options):
        self.hubs = hubs
        self.endpoints = list(endpoints)
        self.live = LiveServer(hubs, secret_key, revoked=revoked, **live_options)
        self.access = MediaAccess(secret_key, revoked=revoked)
        self.hls = HlsOutputs(hubs.hub, idle_timeout=hls_idle)
        self.snapshots = Snapshots(hubs.hub, wait=snapshot_wait)
        self.keeper = (SnapshotKeeper(hubs, store, interval=snapshot_interval, scan=snapshot_scan)
                       if store is not None else None)
        self.app = Starlette(routes=[
            Mount("/media/hls", _any_origin(hls_app(self.hls, self.access.hls))),
            Mount("/media/snapshot", _any_origin(snapshot_app(self.snapshots, self.access.snapshot))),
            *(route for e in self.endpoints for route in e.routes),
            Mount("", self.live.app),  # /media/live/{token}
        ], lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        if self.keeper is not None:
            self.keeper.start()
        yield
        await self.close()

    async def close(self) -> None:
        """End every viewer (WebSocket sessions going away), every HLS output and the keeper."""
        await self.live.close()
        for e in self.endpoints:
            await e.close()
        await self.hls.close()
        if self.keeper is not None:
            await self.keeper.close()

"""Fixtures of the playback tests: real recorded segments (the recorder fed a real H.264 clip,
as tests/recordings do) and the media worker's playback routes on a private HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest_asyncio
import uvicorn
from starlette.applications import Starlette

from faoyam.media.grants import user_grant
from faoyam.media.playback import PlaybackServer
from faoyam.media.testfeed import feed
from faoyam.media.tokens import mint
from faoyam.recordings import service
from tests.web.conftest import browser, live_server, screenshot_dir  # noqa: F401
from tests.recordings.conftest import (_clip_cache, clip, clock, make_owned, owned, recorder,  # noqa: F401
                                       wait_for)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield


@contextlib.asynccontextmanager
async def serve(app):
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                    lifespan="off", ws="websockets-sansio",
                                    ws_per_message_deflate=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Worker:
    def __init__(self, ctx, server: PlaybackServer, host: str):
        self.ctx, self.server, self.host = ctx, server, host
        self.revoked: set[str] = set()

    def token(self, channel, user_id: str, permission: str = "playback", ttl: float = 60) -> str:
        return mint(self.ctx.key, channel, user_grant(user_id), permission=permission, ttl=ttl)

    def http(self, token: str) -> str:
        return f"http://{self.host}/media/playback/{token}"

    def ws(self, token: str) -> str:
        return f"ws://{self.host}/media/playback/{token}/stream"


@pytest_asyncio.fixture
async def worker(ctx):
    holder: dict = {}

    async def revoked(grant) -> bool:
        return grant.grant in holder["w"].revoked

    server = PlaybackServer(ctx.db, ctx.blobs, ctx.key, revoked=revoked, session_idle=30, lead_s=3.0,
                            clip_max_s=3600)
    async with serve(Starlette(routes=server.routes)) as host:
        holder["w"] = Worker(ctx, server, host)
        yield holder["w"]
        await server.close()


async def record(recorder, channel, clip, *, clock=None, gap_s: float = 0, loops: int = 5) -> list:
    """``loops`` × the 2 s clip (keyframe every second) in 3 s segments — 10 s by default:
    3 + 3 + 3 + 1 s; with ``gap_s``: 2 s, the camera away that long, 2 s more (two segments
    and a gap)."""
    rec = recorder.record(channel)
    hub = recorder.hubs.get(channel)
    if not gap_s:
        feed(hub, clip, loops=loops)
        closed = -(-2 * loops // 3) - 1
        last = (2 * loops - 3 * closed) * 25
        await wait_for(lambda: rec.segments_closed == closed and rec.segment is not None and rec.segment.frames == last,
                       what="recorded", state=lambda: (rec.segments_closed, rec.segment and rec.segment.frames))
    else:
        feed(hub, clip, loops=1)
        await wait_for(lambda: rec.segment is not None and rec.segment.frames == 50, what="first part")
        clock.advance(gap_s)
        feed(hub, clip, loops=1)
        await wait_for(lambda: rec.segments_closed == 1 and rec.segment is not None and rec.segment.frames == 50,
                       what="second part")
    await recorder.stop_recording(channel)
    await recorder.drain()
    return await service.segments(recorder.db, channel.device_id, channel.channel, channel.stream)


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)

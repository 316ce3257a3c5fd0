"""``kill -9`` of the whole service — ``faoyam serve``'s supervisor with its web, gateway and
media processes, the process group at once — while simulated cameras push RTMP and are
recorded. After a restart (the media worker's repair pass) the index and the blobs agree,
every segment decodes, and each camera lost at most the last second before the kill.

    FAOYAM_SERVICE_CRASH_CAMERAS=20 pytest tests/recordings/test_service_crash.py -s
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from faoyam import models  # noqa: F401 - every table
from faoyam.accounts import service as accounts
from faoyam.accounts.schemas import Terminal
from faoyam.core.context import Context
from faoyam.core.database import new_id, utcnow
from faoyam.devices.models import Channel, Device
from faoyam.devices.streaming import mint_token
from faoyam.media.rtmp_publisher import Camera, RtmpPublisher, run_cameras
from faoyam.media.testvideo import cached_clip
from faoyam.recordings import service
from faoyam.recordings.models import Segment
from tests.recordings.conftest import decode, increasing

CAMERAS = int(os.environ.get("FAOYAM_SERVICE_CRASH_CAMERAS", "20"))
FLUSH_S = 0.5
MAX_LOSS_S = 1.0  # one ~1 s fragment: the spool interval, the read batch, a loaded loop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(check, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


class Service:
    """``faoyam serve`` in its own process group (so kill -9 takes all of it)."""

    def __init__(self, env: dict, port: int):
        self.env, self.port = env, port
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []

    async def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "faoyam", "serve"], env=self.env, stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True, start_new_session=True)
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")), daemon=True).start()

        async def up():
            try:
                async with httpx.AsyncClient() as h:
                    return (await h.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await _until(up, 90, "the service to answer")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


async def _seed(ctx: Context, n: int) -> list[str]:
    """``n`` bound, activated cameras, each recording its main stream continuously."""
    ids = []
    for i in range(n):
        new = await accounts.create_external_account(
            ctx, provider="test", external_subject=f"crash-{new_id()}", nickname=f"Cam owner {i}", photo=None,
            country="TH", language="en", age_confirmed=True, terminal=Terminal(), ip="127.0.0.1")
        device_id = new_id()
        async with ctx.db.transaction() as s:
            s.add(Device(id=device_id, serial_hash=new_id() * 2, kind="camera", model="FY-CAM-1", safety_code_hash="x",
                         factory_secret_hash="y", owner_id=new.user_id, serial=f"FY{device_id[:8]}", bound_at=utcnow(),
                         credential_hash="activated"))
            await s.flush()
            s.add(Channel(device_id=device_id, index=0))
        await service.set_channel_settings(ctx.db, device_id, 0, service.ChannelSettings())
        ids.append(device_id)
    return ids


@pytest.mark.req("B5", "B12")
async def test_kill_9_of_the_whole_service_loses_at_most_a_second_per_camera(settings, tmp_path, blob_settings):
    served = settings.model_copy(update={"database_url": None, "data_dir": tmp_path / "served", "mqtt_mode": "embedded",
                                         "mqtt_port": _free_port(), "port": _free_port(),
                                         "media_rtmp_port": _free_port()})
    served.ensure_dirs()
    env = {**os.environ, "FAOYAM_DATA_DIR": str(served.data_dir), "FAOYAM_MQTT_MODE": "embedded",
           "FAOYAM_MQTT_PORT": str(served.mqtt_port), "FAOYAM_PORT": str(served.port), "FAOYAM_JOBS_ENABLED": "false",
           "FAOYAM_MEDIA_RTMP_PORT": str(served.media_rtmp_port), "FAOYAM_MEDIA_HTTP_PORT": "0",
           "FAOYAM_RECORDING_SEGMENT_SECONDS": "2", "FAOYAM_RECORDING_FLUSH_SECONDS": str(FLUSH_S),
           **{f"FAOYAM_{k.upper()}": str(v) for k, v in blob_settings.items()}}
    env.pop("FAOYAM_DATABASE_URL", None)
    svc = Service(env, served.port)
    ctx = None
    cameras: list[Camera] = []
    try:
        await svc.start()  # migrates its SQLite database, makes its keys
        ctx = Context.build(served, roles=frozenset({"web"}))
        device_ids = await _seed(ctx, CAMERAS)
        clip = cached_clip(audio=True, bframes=2, seconds=2.0, gop_seconds=1.0)
        for i, device_id in enumerate(device_ids):
            token = mint_token(ctx.key, device_id, 0, "main", 0, ttl_s=600)
            publisher = RtmpPublisher(f"rtmp://127.0.0.1:{served.media_rtmp_port}/live/{token}", timeout=20)
            await publisher.connect()
            cameras.append(Camera(clip, [publisher], start_delay=i * 0.037))
        pushing = asyncio.create_task(run_cameras(cameras, 600))

        async def recorded_enough():
            async with ctx.db.session() as s:
                rows = (await s.execute(select(Segment.device_id, Segment.state))).all()
            done = {d for d, st in rows if st == "complete"}
            per = {d: sum(1 for r in rows if r.device_id == d and r.state == "complete") for d in device_ids}
            return len(done) == CAMERAS and min(per.values()) >= 2

        await _until(recorded_enough, 180, "two stored segments per camera")  # the recorder syncs within 15 s
        await asyncio.sleep(0.3)  # into the middle of a segment
        killed_at = time.time()
        svc.kill()
        pushing.cancel()
        await asyncio.gather(pushing, return_exceptions=True)
        async with ctx.db.session() as s:
            writing = (await s.execute(select(Segment.id).where(Segment.state == "writing"))).all()
        assert writing  # the kill really interrupted segments

        await svc.start()  # the media worker repairs before it records

        async def repaired():
            async with ctx.db.session() as s:
                return not (await s.execute(select(Segment.id).where(Segment.state == "writing"))).first()

        await _until(repaired, 60, "the repair pass")
        svc.stop()

        losses, keys = [], set()
        for device_id in device_ids:
            segs = await service.segments(ctx.db, device_id, 0)
            assert segs and {s.state for s in segs} <= {"complete", "repaired"}
            for seg in segs:
                data = await ctx.blobs.read(seg.storage_key)
                assert len(data) == seg.size
                got = decode(data)
                assert got.frames == seg.frames and increasing(got.dts)
                keys.add(seg.storage_key)
            for a, b in zip(segs, segs[1:]):
                assert b.start >= a.end  # never overlapping
            losses.append(killed_at - segs[-1].end.timestamp())
        stored = {k async for k in ctx.blobs.keys("recording_segment/")}
        assert stored == keys  # index = blobs
        print(f"\nservice crash: {CAMERAS} cameras, seconds lost per camera after kill -9 of the service: "
              f"max {max(losses):.2f}, median {sorted(losses)[len(losses) // 2]:.2f}")
        assert max(losses) <= MAX_LOSS_S, [round(x, 2) for x in losses]
    finally:
        svc.stop()
        for camera in cameras:
            for p in camera.publishers:
                await p.close()
        if ctx is not None:
            await ctx.close()

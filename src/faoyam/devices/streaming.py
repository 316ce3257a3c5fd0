"""Devices push video when someone needs it: publish tokens and start/stop over MQTT.

The media engine keeps one hub per channel stream and tells its owner when the first
consumer arrives (``on_demand``) and when the last one leaves (``on_idle``). This module is
that owner's devices half:

* :class:`StreamDemand` turns those calls into MQTT commands — ``start_stream`` with the
  RTMP URL to push to (whose stream key is a publish token for exactly that device, channel
  and stream), and ``stop_stream`` after the stream has been unwatched for ``linger_s``
  (a viewer who reloads the page, or switches from the grid to one camera, does not make
  the camera stop and start again);
* :meth:`StreamDemand.authorize` is what the RTMP server calls with the stream key a
  publisher presents: it returns ``(device_id, channel, stream)`` or ``None``.

A publish token is ``<device id>.<channel>.<stream>.<expiry>.<mac>``: an HMAC-SHA256 with
the deployment's secret key over those fields *and* the device's credential generation,
so a token stops working when it expires, and also when the device is re-activated
(new credentials) — without a table of issued tokens. The token only opens the *door*:
``authorize`` also checks the database, so a device that was deleted, erased with its
owner's account, or never bound (``owner_id`` NULL, credentials taken back) is refused
even with an unexpired token, and a device can only ever publish its own channels because
the channel is inside the signed token. The stream id used by the media engine is the
device's database id (what viewers' URLs name), not its serial.

Nothing here imports the media engine (domains point down; ``media.lifecycle`` composes
the two): a stream is anything with ``device_id``, ``channel`` and ``stream`` attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Hashable
from typing import Any

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.core.errors import Invalid, NotFound, Problem
from faoyam.devices import registry
from faoyam.devices.gateway.presence import DeviceConnection
from faoyam.devices.models import Channel, Device

log = logging.getLogger("faoyam.devices.streaming")

STREAMS = {"main": 0, "sub": 1}  # the media engine's names -> the protocol's numbers
DEFAULT_TOKEN_SECONDS = 120.0
DEFAULT_LINGER_SECONDS = 10.0
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)  # a device offline when asked: ask again, while wanted
WATCH_SECONDS = 2.0  # how often wanted streams' device connections are compared (one query)


# Publish tokens ----------------------------------------------------------------------


def _mac(key: bytes, device_id: str, channel: int, stream: str, expires: int, generation: int) -> str:
    msg = f"rtmp-publish|{device_id}|{channel}|{stream}|{expires}|{generation}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def mint_token(key: bytes, device_id: str, channel: int, stream: str, generation: int, *,
               ttl_s: float = DEFAULT_TOKEN_SECONDS, now: float | None = None) -> str:
    """A stream key that lets the device ``device_id`` publish ``channel``/``stream`` until
    ``ttl_s`` from now (only the *start* of a publish is checked: a running push is not cut
    when its token expires; a reconnect after expiry needs a new ``start_stream``)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{device_id}.{channel}.{stream}.{expires}.{_mac(key, device_id, channel, stream, expires, generation)}"


def parse_token(token: str) -> tuple[str, int, str, int, str] | None:
    """``(device_id, channel, stream, expires, mac)``, or None when it is not shaped like one."""
    parts = token.split(".")
    if len(parts) != 5:
        return None
    device_id, channel, stream, expires, mac = parts
    if not (device_id.isalnum() and len(device_id) <= 32 and channel.isdigit() and len(channel) <= 3
            and stream in STREAMS and expires.isdigit() and len(expires) <= 12 and len(mac) == 32):
        return None
    return device_id, int(channel), stream, int(expires), mac


async def check_token(ctx: Context, token: str, *, now: float | None = None) -> tuple[str, int, str] | None:
    """The stream ``token`` lets its bearer publish, or None (bad, expired, or the device is
    no longer bound to anyone, or has no such channel)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    device_id, channel, stream, expires, mac = parsed
    if expires < (time.time() if now is None else now):
        return None
    async with ctx.db.session() as s:
        row = (await s.execute(
            select(Device.credential_generation).where(
                Device.id == device_id, Device.owner_id.is_not(None), Device.credential_hash.is_not(None)))).first()
        if row is None:
            return None
        has_channel = (await s.execute(select(Channel.id).where(
            Channel.device_id == device_id, Channel.index == channel))).first()
    expected = _mac(ctx.key, device_id, channel, stream, expires, row.credential_generation)
    if not hmac.compare_digest(expected, mac) or has_channel is None:
        return None
    return device_id, channel, stream


async def encoder_stream_key(ctx: Context, serial: str, channel: int = 0, stream: str = "main", *,
                             ttl_s: float = 30 * 86400.0) -> str:
    """A publish token for an encoder that pushes on its own — a camera with a fixed RTMP
    target, OBS, or ``ffmpeg -re -i clip.mp4 -c copy -f flv rtmp://…/live/<key>`` — instead of
    when the service asks. The device must be bound and activated (the token is tied to its
    credential generation: re-activating it, deleting it or erasing its owner revokes the
    key at once, see :func:`check_token`). ``ttl_s`` defaults to 30 days: the key sits in an
    encoder's settings, and a running push is never cut when it expires."""
    if stream not in STREAMS:
        raise Invalid("stream", f"The stream is one of {', '.join(STREAMS)}.", code="unknown-stream")
    async with ctx.db.session() as s:
        device = await registry.find_by_serial(s, ctx, serial)
        if device is None or device.owner_id is None or device.credential_hash is None:
            raise NotFound("No bound, activated device has this serial number.", code="device-not-found")
        has_channel = (await s.execute(select(Channel.id).where(
            Channel.device_id == device.id, Channel.index == channel))).first()
        if has_channel is None:
            raise NotFound(f"The device has no channel {channel}.", code="channel-not-found")
        return mint_token(ctx.key, device.id, channel, stream, device.credential_generation, ttl_s=ttl_s)


# Start and stop pushing on demand ---------------------------------------------------


class StreamDemand:
    """Asks devices to push while their streams are wanted (see the module docstring).

    ``rtmp_url``: the base URL devices push to, e.g. ``rtmp://media.example.com:1935/live``;
    the token is appended as the stream key.
    """

    def __init__(self, ctx: Context, rtmp_url: str, *, linger_s: float = DEFAULT_LINGER_SECONDS,
                 token_ttl_s: float = DEFAULT_TOKEN_SECONDS, command_timeout_s: float = 10.0,
                 watch_s: float = WATCH_SECONDS):
        self.ctx = ctx
        self.rtmp_url = rtmp_url.rstrip("/")
        self.linger_s = linger_s
        self.token_ttl_s = token_ttl_s
        self.command_timeout_s = command_timeout_s
        self.watch_s = watch_s
        self._wanted: set[Hashable] = set()
        self._tasks: dict[Hashable, asyncio.Task] = {}
        self._lingering: set[Hashable] = set()  # unwatched, stop_stream not sent yet
        # The device connection (presence ``conn``) that accepted each wanted stream's
        # start_stream; a different one later means the device reconnected: ask again.
        self._accepted_by: dict[Hashable, str | None] = {}
        self._watcher: asyncio.Task | None = None
        self.started = 0  # start_stream commands a device accepted
        self.stopped = 0
        self.restarted = 0  # start_stream sent again because the device had reconnected

    # -- the hub owner's callbacks (synchronous: they only schedule) --
    def on_demand(self, stream: Any) -> None:
        self._wanted.add(stream)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="stream-demand-watch")
        if stream in self._lingering:  # still pushing: just call the stop off
            self._lingering.discard(stream)
            self._tasks.pop(stream).cancel()
            return
        self._replace(stream, self._start(stream))

    def on_idle(self, stream: Any) -> None:
        self._wanted.discard(stream)
        self._replace(stream, self._stop_later(stream))
        self._lingering.add(stream)

    async def authorize(self, app: str, stream_key: str) -> tuple[str, int, str] | None:
        """The RTMP server's check of a publisher's stream key."""
        return await check_token(self.ctx, stream_key)

    def _replace(self, stream: Hashable, coro) -> None:
        self._lingering.discard(stream)
        old = self._tasks.pop(stream, None)
        if old is not None:
            old.cancel()
        task = asyncio.create_task(coro, name=f"stream-{stream}")
        self._tasks[stream] = task
        task.add_done_callback(lambda t: self._tasks.get(stream) is t and self._tasks.pop(stream)
                               and self._lingering.discard(stream))

    async def close(self) -> None:
        tasks = list(self._tasks.values()) + ([self._watcher] if self._watcher else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # -- the commands --
    async def _device(self, device_id: str) -> tuple[str, int] | None:
        """(serial, credential generation) of a bound device, or None."""
        async with self.ctx.db.session() as s:
            row = await s.get(Device, device_id)
            if row is None or row.owner_id is None or row.serial is None or row.credential_hash is None:
                return None
            return row.serial, row.credential_generation

    async def _start(self, stream: Any) -> None:
        try:
            await self._ask_to_start(stream)
        finally:
            if stream not in self._accepted_by:  # refused or given up: not again until it reconnects
                with contextlib.suppress(Exception):
                    self._accepted_by[stream] = (await self._connections([stream.device_id])).get(stream.device_id)

    async def _ask_to_start(self, stream: Any) -> None:
        for attempt in range(len(RETRY_SECONDS) + 1):
            found = await self._device(stream.device_id)
            if found is None:
                log.info("stream.start refused: device not bound", extra={"stream": str(stream)})
                return
            serial, generation = found
            token = mint_token(self.ctx.key, stream.device_id, stream.channel, stream.stream, generation,
                               ttl_s=self.token_ttl_s)
            params = {"channel": stream.channel, "stream": STREAMS.get(stream.stream, 0),
                      "url": f"{self.rtmp_url}/{token}", "protocol": "rtmp"}
            try:
                await self.ctx.gateway.command(serial, "start_stream", params, timeout=self.command_timeout_s)
                self._accepted_by[stream] = (await self._connections([stream.device_id])).get(stream.device_id)
                self.started += 1
                log.info("stream.started", extra={"stream": str(stream)})
                return
            except Problem as exc:  # offline, timeout, the device's own refusal
                if getattr(exc, "status", 0) == 422 or attempt == len(RETRY_SECONDS):
                    log.warning("stream.start failed", extra={"stream": str(stream), "error": str(exc)})
                    return
                await asyncio.sleep(RETRY_SECONDS[attempt])

    async def _stop_later(self, stream: Any) -> None:
        await asyncio.sleep(self.linger_s)
        self._lingering.discard(stream)
        if stream in self._wanted:
            return
        self._accepted_by.pop(stream, None)
        found = await self._device(stream.device_id)
        if found is None:
            return  # deleted meanwhile: its connections were dropped with it
        try:
            await self.ctx.gateway.command(found[0], "stop_stream",
                                           {"channel": stream.channel, "stream": STREAMS.get(stream.stream, 0)},
                                           timeout=self.command_timeout_s)
            self.stopped += 1
            log.info("stream.stopped", extra={"stream": str(stream)})
        except Problem as exc:
            log.info("stream.stop failed", extra={"stream": str(stream), "error": str(exc)})

    # -- a device that reconnects while its stream is still wanted --
    async def _connections(self, device_ids: list[str]) -> dict[str, str | None]:
        """device id -> its current connection id, for those connected now (shared presence:
        any gateway node's view, so this works in a media-only process too)."""
        async with self.ctx.db.session() as s:
            rows = await s.execute(select(DeviceConnection.device_id, DeviceConnection.conn)
                                   .where(DeviceConnection.device_id.in_(device_ids)))
            return {r.device_id: r.conn for r in rows}

    async def _watch(self) -> None:
        """While streams are wanted: every ``watch_s``, one query for their devices'
        connections. A device that is connected now through another connection than the one
        that accepted ``start_stream`` (it lost MQTT — and, after a reboot, its push — and
        came back), or that never accepted it (it was offline when asked), is asked again.
        The agent replaces a push it still had, so asking again is harmless."""
        while self._wanted:
            await asyncio.sleep(self.watch_s)
            idle = [st for st in self._wanted if st not in self._tasks]  # no start/stop under way
            if not idle:
                continue
            try:
                now = await self._connections(sorted({st.device_id for st in idle}))
            except Exception as exc:  # noqa: BLE001 - the database is down: look again later
                log.info("stream.watch failed", extra={"error": type(exc).__name__})
                continue
            for stream in idle:
                conn = now.get(stream.device_id, "")
                if conn != "" and (stream not in self._accepted_by or conn != self._accepted_by[stream]):
                    self._accepted_by.pop(stream, None)
                    self.restarted += 1
                    log.info("stream.restart: the device reconnected", extra={"stream": str(stream)})
                    self._replace(stream, self._start(stream))

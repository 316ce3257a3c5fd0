"""The device gateway: the service's MQTT client that speaks the device protocol.

It connects to the broker (embedded or external) as the privileged service client,
subscribes to every device's uplink, checks each message (size, schema, replay, rate)
in the receive loop, and hands the good ones to workers that call the registry
(``faoyam.devices.service``): activation, heartbeats, configuration, alarms, online and
offline. Messages of one device are handled in order (one worker per hash of the serial).

It is also what the registry calls to reach a device (``ports.Gateway``): ``command``
publishes a request with an id and waits for the device's correlated reply.

Several nodes (docs/process-roles.md):

* with ``share_group`` set (Mosquitto), the uplink is a shared subscription
  (``$share/<group>/faoyam/d/+/up/<kind>``): the broker hands each message to one of the
  gateway nodes, so an alarm is handled once however many nodes run;
* command replies are a plain subscription on every node, gateway or not: the node that
  sent the request (it alone holds the waiting future) takes the reply, the others count
  it as unmatched. So a command can be sent from any node, a web node included;
* which devices are connected lives in the database (``presence``), not in a node's
  memory; ``is_online()`` asks it. ``is_connected()`` is this node's own view (what it
  handled), used to wait in tests and kept in step with the database by the sweeper;
* heartbeats are coalesced: a worker only notes them, a flusher writes all of them in
  one transaction per ``heartbeat_flush_s``;
* a node without the uplink (``uplink=False``, the gateway client of the web role) sends
  commands and asks the gateway nodes, on ``faoyam/svc/disconnect``, to drop a device.

Logs carry a pseudonymous device reference (a keyed hash of the serial), never the serial,
an address or a payload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import logging
import re
import time
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from faoyam.core.errors import Problem
from faoyam.core.security import keyed_hash
from faoyam.devices import ports
from faoyam.devices.gateway import messages as m
from faoyam.devices.gateway import presence
from faoyam.devices.gateway import protocol as p
from faoyam.devices.gateway.guard import Guard, GuardOptions

log = logging.getLogger("faoyam.gateway")

_CONNECTED_LOG = re.compile(r"New client connected from (\S+?):\d+ as (factory:[A-Za-z0-9]+) ")


class DeviceError(Problem):
    status, code, title = 502, "device-error", "The device could not do this"


@dataclass
class GatewayOptions:
    heartbeat_s: float = 30.0  # told to devices at activation
    heartbeat_timeout_s: float | None = None  # default 3 x heartbeat_s
    sweep_s: float | None = None  # how often timeouts are checked; default heartbeat_s / 3
    workers: int = 8
    queue_size: int = 10_000
    command_timeout_s: float = 10.0
    heartbeat_flush_s: float | None = None  # default: 1 s, or a sixth of the timeout if shorter
    share_group: str | None = None  # MQTT shared-subscription group of the uplink (Mosquitto)
    guard: GuardOptions = field(default_factory=GuardOptions)

    @property
    def timeout_s(self) -> float:
        return self.heartbeat_timeout_s or 3 * self.heartbeat_s

    @property
    def flush_s(self) -> float:
        return self.heartbeat_flush_s or min(1.0, self.timeout_s / 6)


SVC_DISCONNECT = "faoyam/svc/disconnect"  # {"serial": ...}: gateway nodes drop that device


class _NoAdmin:
    """Embedded broker: credentials are checked by the registry on every CONNECT, so there
    is nothing to provision; revocation closes the connection."""

    def __init__(self, kick=None):
        self._kick = kick

    async def provision_factory(self, serial: str, secret: str) -> None: ...

    async def provision_device(self, serial: str, username: str, password: str) -> None: ...

    async def revoke(self, serial: str) -> None:
        await self.kick(serial)

    async def kick(self, serial: str) -> None:
        if self._kick:
            self._kick(serial)
            self._kick(f"factory:{serial}")


@dataclass
class _Online:
    conn: str | None
    last: float


class DeviceGateway:
    def __init__(self, ctx, *, host: str, port: int, username: str, password: str,
                 options: GatewayOptions | None = None, registry=None, admin=None, external: bool = False,
                 client_id: str | None = None, addresses: dict[str, str] | None = None, uplink: bool = True):
        self.ctx = ctx
        self.host, self.port, self.username, self.password = host, port, username, password
        self.o = options or GatewayOptions()
        self.reg = registry or importlib.import_module("faoyam.devices.service")
        self.external = external
        self.admin = admin or _NoAdmin()
        self.client_id = client_id or f"faoyam-gw-{p.new_id()}"
        self.node = self.client_id
        self.uplink = uplink
        self.guard = Guard(self.o.guard)
        self.stats: Counter[str] = Counter()
        # serial -> address seen by the broker when a factory-stage client connected; used
        # once at activation (B6) and then forgotten.
        self.addresses: dict[str, str] = addresses if addresses is not None else {}
        self._addr_order: OrderedDict[str, None] = OrderedDict()
        self._online: dict[str, _Online] = {}
        # Held while heartbeats are written and while a last will ends a connection, so a
        # flush that took a heartbeat just before the will cannot mark the device online
        # again after the will marked it offline.
        self._presence_lock = asyncio.Lock()
        self._pending: dict[str, tuple[str, asyncio.Future]] = {}
        self._ids: dict[str, str] = {}  # serial -> device row id (never changes)
        # Heartbeats waiting for the next flush: serial -> (received, device time, status),
        # and online announcements that only refresh the connection's time.
        self._beats: dict[str, tuple[dt.datetime, dt.datetime, dict]] = {}
        self._touched: dict[str, dt.datetime] = {}
        self._queues = [asyncio.Queue(self.o.queue_size // self.o.workers) for _ in range(self.o.workers)]
        self._tasks: list[asyncio.Task] = []
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._stopping = False
        # Service topics other roles publish to (``on_service``): topic -> handler(payload).
        self.service_topics: dict[str, Any] = {}

    def on_service(self, topic: str, handler) -> None:
        """Have ``handler(payload: bytes)`` called for every message on ``topic``, a
        service topic (``faoyam/svc/…``) that only service clients may publish to — e.g.
        the media worker's recording events. Every node subscribed gets every message."""
        self.service_topics[topic] = handler
        c = self._client
        if c is not None:
            asyncio.ensure_future(c.subscribe(topic, qos=1))

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, timeout: float = 15.0, *, wait: bool = True) -> None:
        """Connect and run. ``wait=False`` (a web node whose broker may start later): keep
        trying in the background; commands answer ``DeviceOffline`` until connected."""
        self._tasks = [asyncio.create_task(self._run(), name="gateway-mqtt")]
        self._tasks += [asyncio.create_task(self._worker(q), name=f"gateway-worker-{i}")  # replies, on any node
                        for i, q in enumerate(self._queues)]
        if self.uplink:
            self._tasks.append(asyncio.create_task(self._sweeper(), name="gateway-sweeper"))
            self._tasks.append(asyncio.create_task(self._flusher(), name="gateway-heartbeats"))
        if not wait:
            return
        await asyncio.wait_for(self._ready.wait(), timeout)
        if self.external and hasattr(self.admin, "probe") and not await self.admin.probe():
            log.warning("the external broker has no dynamic security: device credentials and ACLs are not managed")
            self.admin = _NoAdmin()

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - the database may be gone already; heartbeats are not precious
            log.warning("heartbeats not flushed at stop")
        for _, fut in self._pending.values():
            if not fut.done():
                fut.cancel()

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                async with aiomqtt.Client(self.host, self.port, username=self.username, password=self.password,
                                          identifier=self.client_id, keepalive=30, clean_session=True,
                                          max_queued_incoming_messages=self.o.queue_size) as c:
                    self._client = c
                    await c.subscribe(self.subscriptions())
                    backoff = 0.2
                    self._ready.set()
                    log.info("gateway connected to the broker")
                    async for msg in c.messages:
                        self._receive(str(msg.topic), bytes(msg.payload) if msg.payload else b"")
            except aiomqtt.MqttError as exc:
                self._client = None
                self._ready.clear()
                if self._stopping:
                    return
                log.warning("gateway lost the broker, reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def subscriptions(self) -> list[tuple[str, int]]:
        """Replies reach every node; the rest of the uplink and the service requests only
        the gateway nodes, the uplink shared among them when ``share_group`` is set."""
        subs = [(p.topic("+", "up", p.REPLY), 1)] + [(t, 1) for t in self.service_topics]
        if self.uplink:
            share = f"$share/{self.o.share_group}/" if self.o.share_group else ""
            subs += [(share + p.topic("+", "up", k), 1) for k in p.UP_KINDS if k != p.REPLY]
            subs.append((SVC_DISCONNECT, 1))
        if self.external:
            subs.append(("$CONTROL/dynamic-security/v1/response", 1))
            if self.uplink:
                subs.append(("$SYS/broker/log/N", 0))
        return subs

    # -- receive: cheap checks in the loop, the rest in workers ------------------------
    def ref(self, serial: str) -> str:
        """A pseudonymous reference for logs (same device, same ref; not the serial)."""
        return keyed_hash(self.ctx.key, f"device-log:{serial}")[:12]

    def _drop(self, serial: str | None, reason: str) -> None:
        self.stats[f"dropped.{reason}"] += 1
        if serial is None:
            log.warning("device message dropped", extra={"reason": reason})
            return
        if reason not in ("rate-limited", "overloaded"):  # the device's own fault: it costs extra
            self.guard.penalise(serial)
        now, n = self.guard.count_drop(serial, reason)
        if now:
            log.warning("device message dropped", extra={"dev": self.ref(serial), "reason": reason, "count": n})
            if reason == "rate-limited":
                self._notify(serial, {"code": "rate-limited", "retry_after_s": 1})

    def _receive(self, t: str, payload: bytes) -> None:
        if t.startswith("$"):
            self._control(t, payload)
            return
        if t == SVC_DISCONNECT:
            self._disconnect_requested(payload)
            return
        handler = self.service_topics.get(t)
        if handler is not None:
            try:
                handler(payload)
            except Exception:  # noqa: BLE001 - a bad message never stops the receive loop
                self._drop(None, "malformed")
            return
        parsed = p.parse_topic(t)
        if parsed is None or parsed[1] != "up":
            self._drop(None, "bad-topic")
            return
        serial, _, kind = parsed
        self.stats["received"] += 1
        if kind not in m.MODELS:
            self._drop(serial, "unknown-kind")
            return
        if len(payload) > p.max_size(kind):
            self._drop(serial, "oversized")
            return
        if not payload:  # a cleared retained message
            return
        is_will = kind == p.STATE and b'"online":false' in payload.replace(b" ", b"")
        if not is_will and not self.guard.admit(serial):
            self._drop(serial, "rate-limited")
            return
        try:
            msg = m.parse(kind, payload)
        except m.Bad as exc:
            self._drop(serial, exc.reason)
            return
        if kind != p.STATE:
            why = self.guard.fresh(serial, msg.id, msg.ts)  # type: ignore[attr-defined]
            if why:
                self._drop(serial, why)
                return
        q = self._queues[zlib.crc32(serial.encode()) % len(self._queues)]
        try:
            q.put_nowait((serial, kind, msg))
        except asyncio.QueueFull:
            if kind == p.STATE:  # online/offline must not be lost: wait for room
                asyncio.ensure_future(q.put((serial, kind, msg)))
            else:
                self._drop(serial, "overloaded")

    def _control(self, t: str, payload: bytes) -> None:
        if t.startswith("$CONTROL/") and hasattr(self.admin, "feed"):
            self.admin.feed(payload)
        elif t == "$SYS/broker/log/N":
            hit = _CONNECTED_LOG.search(payload.decode("utf-8", "replace"))
            if hit:
                self.remember_address(hit.group(2).split(":", 1)[1], hit.group(1))

    def _disconnect_requested(self, payload: bytes) -> None:
        try:
            serial = json.loads(payload)["serial"]
        except Exception:  # noqa: BLE001 - only service clients may publish here; still, never crash the loop
            self._drop(None, "malformed")
            return
        if self.uplink and isinstance(serial, str) and p.parse_topic(p.up(serial, p.STATE)):
            asyncio.ensure_future(self.disconnect(serial))

    def remember_address(self, serial: str, address: str) -> None:
        self.addresses[serial] = address
        self._addr_order[serial] = None
        while len(self._addr_order) > 10_000:
            self.addresses.pop(self._addr_order.popitem(last=False)[0], None)

    async def _worker(self, q: asyncio.Queue) -> None:
        while True:
            serial, kind, msg = await q.get()
            try:
                await getattr(self, f"_on_{kind}")(serial, msg)
                self.stats[f"handled.{kind}"] += 1
            except asyncio.CancelledError:
                raise
            except Problem as exc:
                self.stats["refused"] += 1
                log.info("device message refused", extra={"dev": self.ref(serial), "kind": kind, "code": exc.code})
            except Exception as exc:
                self.stats["errors"] += 1
                log.error("device message failed", extra={"dev": self.ref(serial), "kind": kind,
                                                          "error": type(exc).__name__})
            finally:
                q.task_done()

    # -- handlers ----------------------------------------------------------------------
    async def _publish(self, t: str, body: dict[str, Any], *, qos: int = 1, retain: bool = False) -> None:
        c = self._client
        if c is None:
            raise ports.DeviceOffline("the device broker is not reachable")
        await c.publish(t, p.dumps(body), qos=qos, retain=retain)

    async def publish_raw(self, t: str, payload: bytes, qos: int = 1) -> None:
        c = self._client
        if c is None:
            raise ports.DeviceOffline("the device broker is not reachable")
        await c.publish(t, payload, qos=qos)

    def _notify(self, serial: str, body: dict[str, Any]) -> None:
        if self._client is not None:
            asyncio.ensure_future(self._publish(p.down(serial, p.NOTICE), {"v": 1, "ts": p.now_ms(), **body}, qos=0))

    async def _on_activate(self, serial: str, msg: m.Activate) -> None:
        report = ports.ActivationReport(mac=msg.mac, model=msg.model, firmware=msg.firmware,
                                        channels=[c.model_dump() for c in msg.channels], config=msg.config, ip=msg.ip)
        ip = self.addresses.pop(serial, None) or msg.ip
        self._addr_order.pop(serial, None)
        try:
            creds = await self.reg.activate(self.ctx, serial, report, ip)
            await self.admin.provision_device(serial, creds.username, creds.password)
        except Problem as exc:
            await self._publish(p.down(serial, p.ACTIVATED), {"v": 1, "re": msg.id, "ok": False,
                                                              "error": {"code": exc.code, "message": exc.title}})
            raise
        await self._publish(p.down(serial, p.ACTIVATED), {
            "v": 1, "re": msg.id, "ok": True, "username": creds.username, "password": creds.password,
            "heartbeat_s": self.o.heartbeat_s, "ts": p.now_ms()})
        self.stats["activated"] += 1
        log.info("device activated", extra={"dev": self.ref(serial)})

    async def device_id(self, serial: str) -> str | None:
        """The device row's id (cached: it never changes), None for an unknown serial."""
        did = self._ids.get(serial)
        if did is None:
            async with self.ctx.db.session() as s:
                row = await self.reg.find_by_serial(s, self.ctx, serial)
            if row is None:
                return None
            did = self._ids[serial] = row.id
        return did

    async def _mark(self, serial: str, online: bool, at: dt.datetime, conn: str | None = None) -> None:
        """Tell the registry and the shared presence first, then this node's view (so
        ``is_connected`` never runs ahead of the database), then wake whoever waits."""
        await self.reg.set_online(self.ctx, serial, online, at)
        did = await self.device_id(serial)
        if did is not None:
            if online:
                await presence.connect(self.ctx.db, did, conn, self.node, _now())
            else:
                await presence.disconnect(self.ctx.db, did)
        self._local(serial, _Online(conn, time.monotonic()) if online else None)

    def _local(self, serial: str, state: _Online | None) -> None:
        if state is None:
            if self._online.pop(serial, None) is None:
                return
        else:
            self._online[serial] = state
        asyncio.ensure_future(self._notify_change())

    async def _notify_change(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _on_state(self, serial: str, msg: m.State) -> None:
        at = _at(msg.ts) if msg.ts else _now()
        cur = self._online.get(serial)
        if msg.online:
            if await self.reg.credentials_revoked(self.ctx, serial):
                await self.disconnect(serial)
                return
            if cur is None or cur.conn != msg.conn:
                await self._mark(serial, True, min(at, _now()), msg.conn)
                log.info("device online", extra={"dev": self.ref(serial)})
            else:
                cur.last = time.monotonic()
                self._touched[serial] = _now()
            return
        async with self._presence_lock:
            self._beats.pop(serial, None)  # a heartbeat noted before the will must not revive it
            self._touched.pop(serial, None)
            did = await self.device_id(serial)
            # Only the will of the connection on record ends it (any node may have recorded it).
            if did is not None and await presence.disconnect(self.ctx.db, did, msg.conn):
                await self._mark(serial, False, _now())
                log.info("device offline", extra={"dev": self.ref(serial), "by": "last-will"})
            else:
                self.stats["stale-will"] += 1  # the will of an older connection: ignore
                if cur is not None and cur.conn == msg.conn:
                    self._local(serial, None)

    async def _on_heartbeat(self, serial: str, msg: m.Heartbeat) -> None:
        """Noted only: the flusher writes every noted heartbeat in one transaction."""
        now = _now()
        self._beats[serial] = (now, min(_at(msg.ts), now), msg.status)
        cur = self._online.get(serial)
        if cur is not None:
            cur.last = time.monotonic()

    async def flush(self) -> int:
        """Write the noted heartbeats (one transaction for the registry, one for presence);
        returns how many were noted. A device with no connection on record is now online."""
        async with self._presence_lock:
            return await self._flush()

    async def _flush(self) -> int:
        beats, self._beats = self._beats, {}
        touched, self._touched = self._touched, {}
        if not beats and not touched:
            return 0
        stored = set(await self.reg.heartbeats(
            self.ctx, [(serial, at, status) for serial, (_, at, status) in beats.items()])) if beats else set()
        serial_of: dict[str, str] = {}
        stamps: dict[str, dt.datetime] = {}
        # A refused heartbeat (a released unit) does not keep a connection alive either.
        for serial, received in [*touched.items(), *((s, b[0]) for s, b in beats.items() if s in stored)]:
            did = await self.device_id(serial)
            if did is not None:
                serial_of[did], stamps[did] = serial, received
        for did in await presence.beat(self.ctx.db, stamps, self.node):
            if serial_of[did] not in self._online:
                self._local(serial_of[did], _Online(None, time.monotonic()))
        self.stats["heartbeat-flushes"] += 1
        return len(beats)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.o.flush_s)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - lost heartbeats are replaced by the next ones
                log.error("writing heartbeats failed", extra={"error": type(exc).__name__})

    _on_status = _on_heartbeat

    async def _on_config(self, serial: str, msg: m.Config) -> None:
        await self.reg.report_config(self.ctx, serial, msg.config)

    async def _on_alarm(self, serial: str, msg: m.Alarm) -> None:
        try:
            picture = msg.picture()
        except m.Bad as exc:
            self._drop(serial, exc.reason)
            return
        alarm_id = await self.reg.record_alarm(self.ctx, serial, ports.AlarmReport(
            channel=msg.channel, type=msg.type, at=min(_at(msg.at), _now()), snapshot=picture))
        await self._publish(p.down(serial, p.ACK), {"v": 1, "re": msg.id, "ok": True, "alarm": alarm_id}, qos=0)

    async def _on_reply(self, serial: str, msg: m.Reply) -> None:
        entry = self._pending.get(msg.re)
        if entry is None or entry[0] != serial:  # unknown, late, or not this device's request
            self.stats["unmatched-reply"] += 1
            return
        if not entry[1].done():
            entry[1].set_result(msg)

    async def _sweeper(self) -> None:
        every = self.o.sweep_s or max(0.05, self.o.heartbeat_s / 3)
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - try again at the next sweep
                log.error("marking devices offline failed", extra={"error": type(exc).__name__})

    async def sweep(self) -> None:
        """End the connections silent for longer than the timeout, whichever node recorded
        them (``presence.expire`` marks the device offline too), then bring this node's
        view in step with the database."""
        await self.flush()
        for did in await presence.expire(self.ctx.db, _now() - dt.timedelta(seconds=self.o.timeout_s)):
            log.info("device offline", extra={"dev": self.ref(did), "by": "heartbeat-timeout"})
        mine = {self._ids[s]: s for s in self._online if s in self._ids}
        live = await presence.connected_ids(self.ctx.db, list(mine)) if mine else set()
        for did, serial in mine.items():
            if did not in live:
                self._local(serial, None)

    # -- the Gateway port ----------------------------------------------------------------
    def is_connected(self, serial: str) -> bool:
        """This node's view (see the module docstring); ``is_online()`` is the shared truth."""
        return serial in self._online

    async def is_online(self, serial: str) -> bool:
        """Whether the device is connected, as every node sees it (the database)."""
        did = await self.device_id(serial)
        return did is not None and await presence.is_connected(self.ctx.db, did)

    async def wait_connected(self, serials, timeout: float = 10.0) -> None:
        """Wait until all ``serials`` are connected (as ``is_online()`` sees it)."""
        async def wait():
            while True:
                ids = [await self.device_id(s) for s in serials]
                if None not in ids and len(await presence.connected_ids(self.ctx.db, ids)) == len(set(ids)):
                    return
                await asyncio.sleep(0.1)
        await asyncio.wait_for(wait(), timeout)

    def online(self) -> set[str]:
        return set(self._online)

    async def wait_until(self, predicate, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (re-checked at each online/offline change)."""
        async def wait():
            async with self._changed:
                await self._changed.wait_for(predicate)
        await asyncio.wait_for(wait(), timeout)

    async def command(self, serial: str, name: str, params: dict[str, Any] | None = None,
                      timeout: float | None = None) -> dict:
        if name not in ports.COMMANDS:
            raise ports.NotSupported(f"unknown command {name!r}")
        if not await self.is_online(serial):
            raise ports.DeviceOffline()
        timeout = timeout or self.o.command_timeout_s
        req = p.new_id()
        fut = asyncio.get_running_loop().create_future()
        self._pending[req] = (serial, fut)
        try:
            await self._publish(p.down(serial, p.CMD), {"v": 1, "id": req, "ts": p.now_ms(), "name": name,
                                                       "params": params or {}, "timeout_ms": int(timeout * 1000)})
            reply: m.Reply = await asyncio.wait_for(fut, timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise ports.CommandTimeout() from None
        except aiomqtt.MqttError:
            raise ports.DeviceOffline("the device broker is not reachable") from None
        finally:
            self._pending.pop(req, None)
        if not reply.ok:
            code = reply.error.code if reply.error else "error"
            if code == "not-supported":
                raise ports.NotSupported(f"the device does not support {name}")
            raise DeviceError(f"the device answered {code}", device_code=code)
        result = dict(reply.result)
        if name == "snapshot":  # {"jpeg": base64 JPEG, "channel": n}, checked here
            try:
                ok = p.is_jpeg(p.unb64(result.get("jpeg", "")))
            except ValueError:
                ok = False
            if not ok:
                raise DeviceError("the device sent no JPEG", device_code="bad-snapshot")
        return result

    async def disconnect(self, serial: str) -> None:
        """After the registry revoked the device's credentials: close its connection, drop
        its broker accounts (Mosquitto) and clear its retained state. A node without the
        uplink asks the gateway nodes to do it."""
        if not self.uplink:
            await self.publish_raw(SVC_DISCONNECT, p.dumps({"serial": serial}))
            return
        await self.admin.revoke(serial)
        self._beats.pop(serial, None)
        self._touched.pop(serial, None)
        self.guard.forget(serial)
        did = await self.device_id(serial)
        if did is not None:
            await presence.disconnect(self.ctx.db, did)
        if self._client is not None:
            await self._client.publish(p.up(serial, p.STATE), b"", qos=1, retain=True)
        self._local(serial, None)

    async def provision_factory(self, device: ports.FactoryDevice) -> None:
        await self.admin.provision_factory(device.serial, device.factory_secret)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)

"""Alarm figures (issue 9): throughput end to end, latency to the Web Push request, and
the retention sweep.

    python bench/bench_alarms.py --db postgres            # the figures of docs/alarms.md
    python bench/bench_alarms.py --tiny                   # a smoke run (tests/alarms/test_bench_alarms.py)

Everything runs on this machine: Mosquitto (``MosquittoProcess``), one gateway with its
workers, the alarms dispatcher, a local push service and a local callback receiver (both
tiny HTTP servers answering at once), email to the outbox backend. ``--db postgres`` makes
a fresh PostgreSQL database on 127.0.0.1 (trust auth) and drops it afterwards.

1. **Throughput**: ``--devices`` bound cameras publish alarms (QoS 1, a 2 kB JPEG each) as
   fast as the gateway takes them, for ``--seconds``; each alarm is stored with its picture
   and one message and fanned out to three channels (push, email, webhook). The figure is
   alarms per second from the first publish to the last delivery sent; count in (published)
   must equal count out (events stored, deliveries sent / 3). Baseline: a bare aiomqtt
   subscriber receiving the same messages (what the broker and one client can carry).
2. **Latency**: alarms at ``--rate`` per second for ``--latency-seconds``; for each, the time
   from the device's publish (its ``at``, in ms) to the push service receiving the
   encrypted request (the payload is decrypted afterwards to find the alarm); p50 and p99.
   Baseline: the same path's MQTT hop alone (publish -> the bare subscriber), p50.
3. **Retention sweep**: ``--rows`` expired alarms (with a message each; ``--pictures`` of them
   with a picture) deleted by the retention job (``purge_expired``, 500 rows per transaction),
   and the message-center API's p99 while it runs against its p99 before.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("FAOYAM_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _jpeg(n: int = 0) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (160, 90), (n % 255, 80, 160)).save(out, "JPEG", quality=70)
    return out.getvalue()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _make_pg(name: str) -> str:
    import psycopg2

    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


def _drop_pg(name: str) -> None:
    import psycopg2

    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


class Browser:
    """A push subscription's keys, to decrypt what the push service received."""

    def __init__(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from faoyam.alarms.push import b64u

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = b64u(self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                              serialization.PublicFormat.UncompressedPoint))
        self.auth_b64 = b64u(self.auth)

    def decrypt(self, body: bytes) -> dict:
        import http_ece

        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


async def _setup(ctx, n_devices: int, push_url: str, hook_url: str, browser: Browser) -> tuple[str, list[str], str]:
    import random

    from faoyam.accounts import service as accounts
    from faoyam.accounts.models import User
    from faoyam.accounts.schemas import Terminal
    from faoyam.agent.simulator import make_identity
    from faoyam.alarms import service as alarms
    from faoyam.devices import service
    from faoyam.devices.gateway import factory_register
    from faoyam.devices.ports import ActivationReport
    from faoyam.devices.schemas import AddDeviceIn

    new = await accounts.create_external_account(
        ctx, provider="bench", external_subject="bench", nickname="Bench", photo=None, country="TH", language="en",
        age_confirmed=True, terminal=Terminal(), ip="127.0.0.1")
    async with ctx.db.transaction() as s:
        u = await s.get(User, new.user_id)
        u.email = "bench@example.com"
    rng = random.Random(9)
    serials = []
    for _ in range(n_devices):
        ident = make_identity("camera", rng)
        await factory_register(ctx, ident.factory_device())
        await service.add_device(ctx, u.id, AddDeviceIn(serial=ident.serial, safety_code=ident.safety_code))
        await service.activate(ctx, ident.serial, ActivationReport(
            mac="02:11:22:33:44:55", model=ident.model, firmware="1.0", channels=[{"index": 0}]), None)
        serials.append(ident.serial)
    await alarms.add_push_subscription(ctx, u.id, f"{push_url}/push/bench", browser.p256dh, browser.auth_b64)
    await alarms.set_user_settings(ctx, u.id, email=True)
    await alarms.set_message_callback(ctx, u.id, callback_url=f"{hook_url}/hook", callback_flag="alarm,deviceStatus",
                                      status="on")
    return u.id, serials, new.token


async def _publish(port, user, password, serials, n: int, rate: float | None, picture: bytes) -> float:
    """Publish ``n`` alarms round-robin over the devices (at ``rate``/s, or as fast as the
    broker takes them); returns when the last is acknowledged."""
    import aiomqtt

    from faoyam.devices.gateway import protocol as p

    b64 = p.b64(picture)
    t0 = time.perf_counter()
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              identifier=f"bench-alarms-{p.new_id()}") as c:
        c.pending_calls_threshold = 10_000
        pending = []
        for i in range(n):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            serial = serials[i % len(serials)]
            body = p.envelope(channel=0, type="human", at=p.now_ms(), snapshot=b64)
            # Started at once (a task), so the time in ``at`` is when it left.
            pending.append(asyncio.ensure_future(c.publish(p.up(serial, p.ALARM), p.dumps(body), qos=1)))
            if len(pending) >= 20:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    return time.perf_counter() - t0


async def _bare_subscriber(port, user, password, serials, n, rate, picture) -> tuple[float, list[float]]:
    """Baseline: a bare client receiving the same alarms; (elapsed, per-message latencies)."""
    import aiomqtt

    from faoyam.devices.gateway import protocol as p

    lat: list[float] = []
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              identifier=f"bench-sub-{p.new_id()}", max_queued_incoming_messages=n + 10) as c:
        await c.subscribe(p.topic("+", "up", p.ALARM), qos=1)
        t0 = time.perf_counter()
        pub = asyncio.create_task(_publish(port, user, password, serials, n, rate, picture))
        got = 0
        async for msg in c.messages:
            lat.append(time.time() - json.loads(msg.payload)["at"] / 1000)
            got += 1
            if got >= n:
                break
        elapsed = time.perf_counter() - t0
        await pub
    return elapsed, lat


async def _counts(ctx) -> tuple[int, int]:
    from sqlalchemy import func, select

    from faoyam.alarms.models import AlarmDelivery, AlarmEvent

    async with ctx.db.session() as s:
        events = int(await s.scalar(select(func.count()).select_from(AlarmEvent)))
        sent = int(await s.scalar(select(func.count()).select_from(AlarmDelivery).where(AlarmDelivery.status == "sent")))
    return events, sent


async def _reset(ctx) -> None:
    """Empty the alarm tables between phases (again if it meets the dispatcher's last round)."""
    from sqlalchemy import delete
    from sqlalchemy.exc import DBAPIError

    from faoyam.alarms.models import AlarmDelivery, AlarmEvent, AlarmMessage
    from faoyam.core.models import OutboundMessage

    for attempt in range(5):
        try:
            async with ctx.db.transaction() as s:
                for m in (AlarmDelivery, AlarmMessage, AlarmEvent, OutboundMessage):
                    await s.execute(delete(m))
            return
        except DBAPIError:
            if attempt == 4:
                raise
            await asyncio.sleep(1)


async def _gateway(ctx, mosq, n: int):
    from faoyam.devices.gateway.core import DeviceGateway, GatewayOptions
    from faoyam.devices.gateway.guard import GuardOptions

    opts = GatewayOptions(heartbeat_s=300, guard=GuardOptions(rate=1e9, burst=1e9), queue_size=max(20_000, 2 * n),
                          workers=8)
    gw = DeviceGateway(ctx, host="127.0.0.1", port=mosq.port, username=mosq.service_user,
                       password=mosq.service_password, options=opts, external=True)
    await gw.start()
    return gw


async def throughput(ctx, mosq, serials, seconds: float, est_rate: float, picture: bytes) -> dict:
    n = max(20, int(seconds * est_rate))
    await _reset(ctx)
    base_elapsed, _ = await _bare_subscriber(mosq.port, mosq.service_user, mosq.service_password, serials, n, None,
                                             picture)
    gw = await _gateway(ctx, mosq, n)
    try:
        for s in serials:
            await gw.device_id(s)
        t0 = time.perf_counter()
        await _publish(mosq.port, mosq.service_user, mosq.service_password, serials, n, None, picture)
        stored_at = None
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            events, sent = await _counts(ctx)
            if stored_at is None and events >= n:
                stored_at = time.perf_counter()
            if sent >= 3 * n:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - t0
        events, sent = await _counts(ctx)
        stats = dict(gw.stats)
    finally:
        await gw.stop()
    return {"n": n, "rate": n / elapsed, "stored_rate": n / ((stored_at or time.perf_counter()) - t0),
            "baseline": n / base_elapsed, "events": events, "sent": sent, "errors": stats.get("errors", 0),
            "refused": stats.get("refused", 0)}


async def latency(ctx, mosq, serials, seconds: float, rate: float, picture: bytes, push_server, browser) -> dict:
    n = max(10, int(seconds * rate))
    await _reset(ctx)
    _, base = await _bare_subscriber(mosq.port, mosq.service_user, mosq.service_password, serials, n, rate, picture)
    push_server.requests.clear()
    gw = await _gateway(ctx, mosq, n)
    try:
        for s in serials:
            await gw.device_id(s)
        await _publish(mosq.port, mosq.service_user, mosq.service_password, serials, n, rate, picture)
        deadline = time.perf_counter() + 120
        while len(push_server.requests) < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await gw.stop()
    lat = []
    for req in push_server.requests:
        body = browser.decrypt(req.body)
        at = dt.datetime.fromisoformat(body["at"]).timestamp()
        lat.append(req.received - at)
    return {"n": n, "received": len(lat), "p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99),
            "base_p50": _pct(base, 0.5), "base_p99": _pct(base, 0.99)}


async def sweep(ctx, rows: int, pictures: int, user_id: str, device_id: str, token: str) -> dict:
    import httpx
    from sqlalchemy import insert

    from faoyam.alarms.models import AlarmEvent, AlarmMessage
    from faoyam.app import create_app
    from faoyam.core.database import new_id, utcnow
    from faoyam.privacy.subjects import purge_expired

    await _reset(ctx)
    old = utcnow() - dt.timedelta(days=8)
    picture = _jpeg(1)
    batch = 5000
    for start in range(0, rows, batch):
        events, messages = [], []
        for i in range(start, min(rows, start + batch)):
            key = await ctx.blobs.put("alarm_snapshot", picture) if i < pictures else None
            aid = new_id()
            events.append({"id": aid, "device_id": device_id, "channel": 0, "kind": "human", "at": old,
                           "snapshot_key": key, "source": "device", "received_at": old})
            messages.append({"id": new_id(), "alarm_id": aid, "user_id": user_id, "at": old, "created_at": old})
        async with ctx.db.transaction() as s:
            await s.execute(insert(AlarmEvent), events)
            await s.execute(insert(AlarmMessage), messages)
    if ctx.db.engine.dialect.name == "postgresql":  # what autovacuum would do after a bulk load
        from sqlalchemy import text

        async with ctx.db.engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
    # A few fresh messages for the API to list (they are kept).
    from faoyam.alarms import service as alarms

    devices_ = await _device_list(ctx, user_id)
    for d in devices_[:5]:
        await alarms.raise_alarm(ctx, device_id=d, channel=0, kind="human", at=utcnow(), snapshot=None)
    app = create_app(ctx=ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async def api_times(stop: asyncio.Event | None, count: int) -> list[float]:
            out = []
            while (stop is None and len(out) < count) or (stop is not None and not stop.is_set()):
                t = time.perf_counter()
                r = await client.get("/api/v1/alarms/messages?limit=20")
                assert r.status_code == 200, r.text
                out.append(time.perf_counter() - t)
                await asyncio.sleep(0.01)
            return out

        before = await api_times(None, 100)
        stop = asyncio.Event()
        during_task = asyncio.create_task(api_times(stop, 0))
        t0 = time.perf_counter()
        report = await purge_expired(ctx.db, ctx.blobs, utcnow())
        elapsed = time.perf_counter() - t0
        stop.set()
        during = await during_task
    return {"rows": rows, "pictures": pictures, "seconds": elapsed, "deleted": report.counts.get("alarm_events", 0),
            "blobs": report.blobs, "before_p99": _pct(before, 0.99), "during_p99": _pct(during, 0.99),
            "during_n": len(during)}


async def _device_list(ctx, user_id: str) -> list[str]:
    from faoyam.devices import service

    return [d.id for d in await service.list_devices(ctx, user_id)]


async def main(args) -> None:
    from faoyam.alarms import outbox
    from faoyam.alarms.runtime import FloodGuard, runtime
    from faoyam.core.config import Settings
    from faoyam.core.context import Context
    from faoyam.devices.gateway.mosquitto import MosquittoProcess
    from tests.alarms.localhttp import LocalHTTP

    import faoyam.models  # noqa: F401 - every domain's tables

    tmp = Path(tempfile.mkdtemp(prefix="faoyam-bench-alarms-"))
    pg_name = f"faoyam_bench_alarms_{os.getpid()}"
    url = _make_pg(pg_name) if args.db == "postgres" else (args.db or None)
    s = Settings(data_dir=tmp / "data", database_url=url, mqtt_mode="external", log_level="WARNING",
                 rate_limit_enabled=False, _env_file=None)
    ctx = Context.build(s)
    await ctx.db.create_all()
    runtime(ctx).flood = FloodGuard(rate=1e9, burst=1e9)
    push_server = await LocalHTTP(status=201).start()
    hook_server = await LocalHTTP(status=200).start()
    browser = Browser()
    user_id, serials, token = await _setup(ctx, args.devices, push_server.url, hook_server.url, browser)
    dispatcher = asyncio.create_task(outbox.run(ctx))
    picture = _jpeg()
    db = "PostgreSQL" if url and "postgresql" in url else "SQLite"
    try:
        with MosquittoProcess(tmp / "mosquitto") as mosq:
            if "throughput" in args.only:
                tp = await throughput(ctx, mosq, serials, args.seconds, args.estimate, picture)
                print(f"\n1. throughput end to end ({db}, {args.devices} devices, {tp['n']} alarms, "
                      f"{len(picture)} B JPEG each, 3 channels):")
                print(f"   bare aiomqtt subscriber (baseline) {tp['baseline']:>8,.0f} alarms/s")
                print(f"   stored (event + picture + message)  {tp['stored_rate']:>8,.0f} alarms/s   "
                      f"{tp['stored_rate'] / tp['baseline']:.2f}x baseline")
                print(f"   end to end (3 deliveries sent)      {tp['rate']:>8,.0f} alarms/s   "
                      f"{tp['rate'] / tp['baseline']:.2f}x baseline")
                print(f"   count in {tp['n']} = events {tp['events']}, deliveries sent {tp['sent']} / 3 = "
                      f"{tp['sent'] / 3:.0f}: {tp['n'] == tp['events'] == tp['sent'] // 3}; "
                      f"gateway errors {tp['errors']}, refused {tp['refused']}")
            if "latency" in args.only:
                lt = await latency(ctx, mosq, serials, args.latency_seconds, args.rate, picture, push_server, browser)
                print(f"\n2. latency device alarm -> Web Push request received by the push service "
                      f"({db}, {args.rate:.0f} alarms/s, {lt['n']} alarms, {lt['received']} pushes):")
                print(f"   MQTT hop alone (baseline)  p50 {lt['base_p50'] * 1000:7.1f} ms   "
                      f"p99 {lt['base_p99'] * 1000:7.1f} ms")
                print(f"   alarm -> push request      p50 {lt['p50'] * 1000:7.1f} ms   p99 {lt['p99'] * 1000:7.1f} ms"
                      f"   (p50 {lt['p50'] / max(lt['base_p50'], 1e-6):.1f}x baseline)")
        if "sweep" in args.only:
            sw = await sweep(ctx, args.rows, args.pictures, user_id, await _first_device(ctx, user_id), token)
            print(f"\n3. retention sweep ({db}): {sw['deleted']:,} expired alarms with their messages "
                  f"({sw['pictures']:,} pictures, {sw['blobs']:,} blobs deleted) in {sw['seconds']:.1f} s "
                  f"= {sw['deleted'] / max(sw['seconds'], 1e-9):,.0f} rows/s")
            print(f"   message-center API p99 before {sw['before_p99'] * 1000:.1f} ms, during the sweep "
                  f"{sw['during_p99'] * 1000:.1f} ms ({sw['during_n']} requests) = "
                  f"{sw['during_p99'] / max(sw['before_p99'], 1e-9):.2f}x")
    finally:
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)
        from faoyam.alarms import lifecycle

        await lifecycle.stop(ctx)
        await push_server.stop()
        await hook_server.stop()
        await ctx.close()
        if args.db == "postgres":
            _drop_pg(pg_name)


async def _first_device(ctx, user_id: str) -> str:
    return (await _device_list(ctx, user_id))[0]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="", help="'postgres' (a fresh database on 127.0.0.1), a URL, or SQLite if empty")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0, help="throughput: alarms for this long at --estimate/s")
    ap.add_argument("--estimate", type=float, default=1000.0, help="throughput: alarms per second to send")
    ap.add_argument("--rate", type=float, default=100.0, help="latency: alarms per second")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--rows", type=int, default=1_000_000, help="sweep: expired alarms")
    ap.add_argument("--pictures", type=int, default=10_000, help="sweep: how many of them have a picture")
    ap.add_argument("--only", default="throughput,latency,sweep")
    ap.add_argument("--tiny", action="store_true", help="a smoke run: a few devices, seconds and rows")
    a = ap.parse_args()
    if a.tiny:
        a.devices, a.seconds, a.estimate, a.latency_seconds, a.rate, a.rows, a.pictures = 3, 2, 20, 2, 10, 300, 20
    asyncio.run(main(a))

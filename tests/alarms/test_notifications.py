"""Notifications (B11): Web Push with real RFC 8291 encryption decrypted by the test with
the subscription's private key, a dead endpoint (410), email through a real SMTP server
(and retried while it is down), the Imou-format callback — each with the snapshot link."""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.parse

import http_ece
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import select, update

from faoyam.alarms import push
from faoyam.alarms import service as alarms
from faoyam.alarms.models import AlarmDelivery, PushSubscription
from faoyam.core.database import utcnow
from tests.alarms.conftest import jpeg, raise_one
from tests.alarms.localhttp import LocalHTTP


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Browser:
    """What a browser's push subscription holds: its key pair and auth secret."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = _b64u(self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                               serialization.PublicFormat.UncompressedPoint))

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


def _verify_vapid(header: str, audience: str, server_key: str) -> None:
    """The Authorization header is ``vapid t=<ES256 JWT>,k=<the key browsers subscribed with>``."""
    assert header.startswith("vapid ")
    parts = dict(p.split("=", 1) for p in header[6:].split(","))
    assert parts["k"] == server_key
    head, claims, sig = parts["t"].split(".")
    raw = _unb64u(sig)
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64u(parts["k"]))
    pub.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
               f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(_unb64u(claims))["aud"] == audience


@pytest.mark.req("B11")
async def test_web_push_is_encrypted_for_the_subscription_and_carries_the_snapshot_link(ctx, client, cam):
    service = await LocalHTTP(status=201).start()
    browser = Browser()
    try:
        key = (await client.get("/api/v1/alarms/push/key")).json()["key"]
        r = await client.post("/api/v1/alarms/push/subscriptions", headers=cam.owner.h, json={
            "endpoint": f"{service.url}/push/abc", "keys": {"p256dh": browser.p256dh, "auth": _b64u(browser.auth)}})
        assert r.status_code == 201, r.text
        alarm_id = await raise_one(ctx, cam, channel=1, kind="human", snapshot=jpeg())
        assert await alarms.dispatch_once(ctx) == 1
        (req,) = service.requests
        assert req.path == "/push/abc" and req.headers["content-encoding"] == "aes128gcm"
        assert req.headers["ttl"] and req.headers["urgency"] == "high"
        _verify_vapid(req.headers["authorization"], service.url, key)
        assert jpeg() not in req.body and b"human" not in req.body  # encrypted
        body = browser.decrypt(req.body)
        assert body["alarm_id"] == alarm_id and body["kind"] == "human" and body["channel"] == 1
        assert body["title"] == "Person detected"
        assert body["clip_url"].startswith(f"/devices/{cam.device_id}/channels/1/playback?at=")
        # The snapshot link works without a session: the picture was stored before the push.
        link = urllib.parse.urlsplit(body["snapshot_url"])
        shot = await client.get(f"{link.path}?{link.query}")
        assert shot.status_code == 200 and shot.content == jpeg()
        tampered = link.query.replace("sig=", "sig=0")
        assert (await client.get(f"{link.path}?{tampered}")).status_code == 404
        async with ctx.db.session() as s:
            assert (await s.execute(select(AlarmDelivery.status))).scalar() == "sent"
    finally:
        await service.stop()


@pytest.mark.req("B11")
async def test_a_dead_push_endpoint_removes_the_subscription(ctx, client, cam):
    gone = await LocalHTTP(status=410).start()
    try:
        browser = Browser()
        await alarms.add_push_subscription(ctx, cam.owner.user_id, f"{gone.url}/dead", browser.p256dh,
                                           _b64u(browser.auth))
        await raise_one(ctx, cam)
        await alarms.dispatch_once(ctx)
        assert len(gone.requests) == 1
        async with ctx.db.session() as s:
            assert (await s.execute(select(PushSubscription))).first() is None
            assert (await s.execute(select(AlarmDelivery.status))).scalar() == "dropped"
        await raise_one(ctx, cam)  # nothing to push to any more
        async with ctx.db.session() as s:
            assert len((await s.execute(select(AlarmDelivery))).all()) == 1
    finally:
        await gone.stop()


class _Inbox:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.req("B11")
async def test_email_goes_through_smtp_with_the_picture_and_is_retried_while_smtp_is_down(ctx, client, cam):
    port = _free_port()
    ctx.settings.mail_backend, ctx.settings.smtp_host, ctx.settings.smtp_port = "smtp", "127.0.0.1", port
    await alarms.set_user_settings(ctx, cam.owner.user_id, email=True)
    await raise_one(ctx, cam, kind="doorbell", snapshot=jpeg())
    # Nobody listens on the port: the delivery stays in the outbox, due again later.
    assert await alarms.dispatch_once(ctx) == 1
    async with ctx.db.session() as s:
        row = (await s.execute(select(AlarmDelivery))).scalar_one()
    assert row.status == "pending" and row.attempts == 1 and row.next_at > utcnow() and row.last_error
    inbox = _Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with ctx.db.transaction() as s:  # the retry time has come
            await s.execute(update(AlarmDelivery).values(next_at=utcnow()))
        assert await alarms.dispatch_once(ctx) == 1
    finally:
        smtp.stop()
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert b"To: owner@example.com" in mail and b"Doorbell ring" in mail
    assert b"Content-Type: image/jpeg" in mail and base64.b64encode(jpeg())[:40] in mail.replace(b"\r\n", b"")
    async with ctx.db.session() as s:
        assert (await s.execute(select(AlarmDelivery.status, AlarmDelivery.attempts))).one() == ("sent", 2)


@pytest.mark.req("B11")
async def test_the_message_callback_posts_imou_format_events(ctx, client, cam):
    receiver = await LocalHTTP(status=200).start()
    try:
        r = await client.put("/api/v1/alarms/callback", headers=cam.owner.h, json={
            "callbackFlag": "alarm", "callbackUrl": f"{receiver.url}/hook", "status": "on"})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        assert (await client.get("/api/v1/alarms/callback", headers=cam.owner.h)).json()["callbackFlag"] == "alarm"
        alarm_id = await raise_one(ctx, cam, channel=0, kind="videoMotion", snapshot=jpeg())
        await raise_one(ctx, cam, channel=0, kind="offline")  # deviceStatus: not asked for
        assert await alarms.dispatch_once(ctx) == 1
        (req,) = receiver.requests
        body = json.loads(req.body)
        assert {k: body[k] for k in ("msgType", "did", "cid", "id", "token")} == {
            "msgType": "videoMotion", "did": cam.device_id, "cid": "0", "id": alarm_id, "token": token}
        assert body["cname"] == "Channel 1" and isinstance(body["time"], int) and body["dname"]
        pic = urllib.parse.urlsplit(body["picurlArray"][0])
        assert (await client.get(f"{pic.path}?{pic.query}")).content == jpeg()
    finally:
        await receiver.stop()


@pytest.mark.req("B11")
async def test_vapid_key_is_made_once_and_kept(ctx):
    path = ctx.settings.data_dir / "vapid.pem"
    first = push.application_server_key(push.vapid_key(path))
    push.vapid_key.cache_clear()
    assert push.application_server_key(push.vapid_key(path)) == first
    assert oct(path.stat().st_mode)[-3:] == "600"

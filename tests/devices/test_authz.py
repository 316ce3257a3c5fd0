"""Who may do what: every device endpoint × {owner, invitee with each single permission,
stranger} gets exactly the expected status. Strangers get 404, never a hint.

The app's own route table is the list to cover: every route is either in the device
matrix (``ENDPOINTS``) or has an explicit entry in ``OTHER_ROUTES`` saying who may call it,
and the signed-in ones are checked to refuse a signed-out caller. A new endpoint without an
entry fails ``test_every_route_has_an_entry``.

The people and the running app are made once for the module (a matrix of ~170 requests
must stay fast); every test gets a fresh device with fresh shares, so a test that
deletes something cannot disturb the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event

from faoyam.alarms import service as alarms
from faoyam.app import create_app
from faoyam.core.config import Settings
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Forbidden, NotFound
from faoyam.devices import authz, service
from faoyam.devices.ports import AlarmReport
from faoyam.devices.schemas import AddDeviceIn, ShareLinkIn
from tests.conftest import DB_KIND, _empty_pg, register
from tests.devices.conftest import FakeGateway, Person, activation, grant, jpeg, make_device, person, png

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROLES = ["owner", "live", "playback", "alarms", "control", "stranger"]
PNG = ("png", None)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {d} device, {s} a share of the device, {l} a share link, {a} an alarm
    permission: str  # what it needs: view, live, playback, alarms, control, manage
    ok: int
    body: object = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/devices/{d}", "view", 200),
    Endpoint("PATCH", "/devices/{d}", "manage", 200, {"name": "Renamed"}),
    Endpoint("DELETE", "/devices/{d}", "manage", 204),
    Endpoint("PATCH", "/devices/{d}/channels/0", "manage", 200, {"name": "Gate"}),
    Endpoint("PUT", "/devices/{d}/cover", "manage", 204, PNG),
    Endpoint("GET", "/devices/{d}/cover", "view", 200),
    Endpoint("DELETE", "/devices/{d}/cover", "manage", 204),
    Endpoint("PUT", "/devices/{d}/channels/0/cover", "manage", 204, PNG),
    Endpoint("GET", "/devices/{d}/channels/0/cover", "view", 200),
    Endpoint("DELETE", "/devices/{d}/channels/0/cover", "manage", 204),
    Endpoint("GET", "/devices/{d}/channels/0/detection", "manage", 200),
    Endpoint("PUT", "/devices/{d}/channels/0/detection", "manage", 200, {"enabled": True, "sensitivity": 60}),
    Endpoint("PUT", "/devices/{d}/password", "manage", 204, {"password": "Another-2026"}),
    Endpoint("POST", "/devices/{d}/password/reset", "manage", 204),
    Endpoint("PUT", "/devices/{d}/wifi", "manage", 204, {"ssid": "Net", "password": "wifi-pass-1"}),
    Endpoint("POST", "/devices/{d}/reboot", "control", 200),
    Endpoint("POST", "/devices/{d}/snapshot", "control", 200, {"channel": 0}),
    Endpoint("POST", "/devices/{d}/ptz/move", "control", 200, {"channel": 0, "pan": 0.3}),
    Endpoint("POST", "/devices/{d}/ptz/locate", "control", 200, {"channel": 0, "x": 0, "y": 0}),
    Endpoint("GET", "/devices/{d}/ptz", "control", 200),
    Endpoint("PUT", "/devices/{d}/config", "control", 200, {"config": {"led": "off"}}),
    Endpoint("GET", "/devices/{d}/alarms", "alarms", 200),
    Endpoint("GET", "/devices/{d}/recordings/0/timeline?from=0&to=3600000", "playback", 200),
    Endpoint("GET", "/devices/{d}/recordings/0/days?from=2026-01-01&to=2026-01-31", "playback", 200),
    Endpoint("GET", "/devices/{d}/alarms/{a}/snapshot", "alarms", 200),
    Endpoint("GET", "/devices/{d}/alarm-settings", "alarms", 200),
    Endpoint("PUT", "/devices/{d}/detection", "manage", 200, {"enabled": False}),
    Endpoint("PUT", "/devices/{d}/channels/0/arming", "manage", 200,
             {"windows": [{"days": [0, 1], "start": "22:00", "end": "06:00"}]}),
    Endpoint("POST", "/devices/{d}/shares", "manage", 201, {"contact": "target@example.com", "permissions": ["live"]}),
    Endpoint("GET", "/devices/{d}/shares", "manage", 200),
    Endpoint("PATCH", "/devices/{d}/shares/{s}", "manage", 200, {"permissions": ["live", "alarms"]}),
    Endpoint("DELETE", "/devices/{d}/shares/{s}", "manage", 204),
    Endpoint("POST", "/devices/{d}/share-links", "manage", 201, {"hours": 1}),
    Endpoint("GET", "/devices/{d}/share-links", "manage", 200),
    Endpoint("DELETE", "/devices/{d}/share-links/{l}", "manage", 204),
    # Recording (recordings/api.py): settings and status, listing and deleting recordings.
    Endpoint("GET", "/devices/{d}/channels/0/recording", "playback", 200),
    Endpoint("PUT", "/devices/{d}/channels/0/recording", "manage", 200, {"mode": "off"}),
    Endpoint("GET", "/devices/{d}/channels/0/recordings", "playback", 200),
    Endpoint("DELETE", "/devices/{d}/channels/0/recordings", "manage", 200),
]


# Every route that is not about one device: who may call it. "public": anyone (rate limits
# apply where it matters); "signed-in": an API route that answers 401 when signed out;
# "page": an HTML page anyone may see; "signed-in page": answers 303 to the sign-in page.
# Device pages and routes decide per device in the service (``authz.require``), like the API.
OTHER_ROUTES: dict[str, str] = {
    "GET /api/openapi.json": "public", "GET /api/docs": "public", "GET /docs/oauth2-redirect": "public",
    "GET /healthz": "public",
    "POST /api/v1/accounts/register": "public", "POST /api/v1/accounts/register/confirm": "public",
    "POST /api/v1/sessions": "public", "DELETE /api/v1/sessions/current": "signed-in",
    "GET /api/v1/me": "signed-in", "PATCH /api/v1/me": "signed-in", "DELETE /api/v1/me": "signed-in",
    "PUT /api/v1/me/photo": "signed-in", "GET /api/v1/me/photo": "signed-in", "DELETE /api/v1/me/photo": "signed-in",
    "POST /api/v1/me/contact": "signed-in", "POST /api/v1/me/contact/{kind}/confirm": "signed-in",
    "POST /api/v1/me/password": "signed-in",
    "POST /api/v1/password-reset": "public", "POST /api/v1/password-reset/confirm": "public",
    "POST /api/v1/me/reauth": "signed-in", "POST /api/v1/me/reauth/code": "signed-in",
    "GET /api/v1/me/terminals": "signed-in", "DELETE /api/v1/me/terminals/{session_id}": "signed-in",
    "GET /api/v1/me/sign-ins": "signed-in",
    "GET /api/v1/privacy/register": "public", "GET /api/v1/privacy/export": "signed-in",
    "POST /api/v1/privacy/child-reports": "public", "GET /api/v1/privacy/notice": "public",
    "GET /privacy": "page", "GET /cookies": "page", "GET /privacy/report-child": "page",
    "POST /api/v1/devices": "signed-in", "GET /api/v1/devices": "signed-in",
    "GET /api/v1/device-shares": "signed-in", "POST /api/v1/device-shares/{share_id}/accept": "signed-in",
    "POST /api/v1/device-shares/{share_id}/decline": "signed-in", "DELETE /api/v1/device-shares/{share_id}": "signed-in",
    "GET /devices/add": "signed-in page", "GET /devices/invitations": "signed-in page",
    "GET /devices/{device_id}": "signed-in page", "GET /devices/{device_id}/sharing": "signed-in page",
    # Motion detection settings (web/detection_pages.py): the owner's, by detection.service
    # (devices.authz "manage"); tested in tests/detection/test_pages.py.
    "GET /devices/{device_id}/detection/{channel}": "signed-in page",
    "GET /s/{token}": "page", "GET /api/v1/share-links/{token}": "public",
    # Live view (web/device_pages.py): authorization by devices.authz.require(…, "live", channel),
    # tested in tests/web/test_live_pages.py; share-link live view by the link itself.
    "GET /live": "signed-in page", "GET /devices/{device_id}/live/{channel}": "signed-in page",
    "GET /devices/{device_id}/live/{channel}/url": "signed-in",
    "GET /s/{token}/live/{channel}": "page", "GET /s/{token}/live/{channel}/url": "public",
    # HLS, snapshot URLs and Home's last snapshot (web/media_pages.py): the same authorization
    # as the live URL, tested in tests/media/test_hls_worker.py and tests/web/test_home_snapshots.py.
    "GET /devices/{device_id}/live/{channel}/hls": "signed-in",
    "GET /devices/{device_id}/live/{channel}/snapshot/url": "signed-in",
    "GET /devices/{device_id}/live/{channel}/last.jpg": "signed-in",
    "GET /s/{token}/live/{channel}/hls": "public", "GET /s/{token}/live/{channel}/snapshot/url": "public",
    "GET /s/{token}/live/{channel}/last.jpg": "public",
    # Talk-back (web/device_pages.py): devices.talkback.require_talk ("control", a doorbell),
    # tested in tests/web/test_talk_pages.py.
    "GET /devices/{device_id}/talk/{channel}/url": "signed-in",
    # One recording (recordings/api.py): "manage" on the channel, tested in
    # tests/recordings/test_api.py (an invitee gets 403, a stranger 404); the recording page
    # (web/recording_pages.py): "manage", tested there too.
    "DELETE /api/v1/devices/{device_id}/channels/{index}/recordings/{segment_id}": "signed-in",
    "GET /devices/{device_id}/recording/{channel}": "signed-in page",
    # Playback (web/playback_pages.py): devices.authz.require(…, "playback", channel), tested in
    # tests/playback/test_playback_pages.py (the timeline API is in the matrix above).
    "GET /devices/{device_id}/playback/{channel}": "signed-in page",
    "GET /devices/{device_id}/playback/{channel}/url": "signed-in",
    "GET /manifest.webmanifest": "public", "GET /sw.js": "public", "GET /offline": "page",
    "POST /lang": "public", "POST /web/password-strength": "public",
    "GET /": "page", "GET /signin": "page", "GET /register": "page", "GET /register/confirm": "page",
    "GET /password-reset": "page", "GET /goodbye": "page", "GET /demo/outbox": "page",
    "GET /home": "signed-in page", "GET /messages": "signed-in page", "GET /cloud": "signed-in page",
    "GET /me": "signed-in page", "GET /me/profile": "signed-in page", "GET /me/settings": "signed-in page",
    "GET /me/settings/security": "signed-in page", "GET /me/settings/security/terminals": "signed-in page",
    "GET /me/settings/security/password": "signed-in page", "GET /me/settings/security/export": "signed-in page",
    "GET /me/settings/security/delete": "signed-in page",
    # Alarms (alarms/api.py): a person's own messages, settings and subscriptions; the
    # signed snapshot link checks its signature and the reader's "alarms" access
    # (tests/alarms/test_message_center.py, test_notifications.py).
    "GET /api/v1/alarms/messages": "signed-in", "POST /api/v1/alarms/messages/read": "signed-in",
    "DELETE /api/v1/alarms/messages": "signed-in", "DELETE /api/v1/alarms/messages/{message_id}": "signed-in",
    "GET /api/v1/alarms/stream": "signed-in", "GET /api/v1/alarms/{alarm_id}/snapshot": "public",
    "GET /api/v1/alarms/push/key": "public", "POST /api/v1/alarms/push/subscriptions": "signed-in",
    "DELETE /api/v1/alarms/push/subscriptions": "signed-in",
    "GET /api/v1/alarms/preferences": "signed-in", "PUT /api/v1/alarms/preferences": "signed-in",
    "GET /api/v1/alarms/settings": "signed-in", "PUT /api/v1/alarms/settings": "signed-in",
    "GET /api/v1/alarms/consent": "signed-in",
    "GET /api/v1/alarms/callback": "signed-in", "PUT /api/v1/alarms/callback": "signed-in",
    "GET /api/v1/auth/providers": "public", "GET /auth/{provider}/login": "public",
    "GET /auth/{provider}/callback": "public", "GET /auth/external/complete": "page",
    "POST /auth/external/complete": "public",
    # The back office (staff/pages.py): a staff session (the faoyam_staff cookie, never a
    # customer's) with the permission each route declares (staff/permissions.py); tested
    # in tests/staff (every /staff route declares one; support cannot erase; CSRF).
    "GET /staff/signin": "staff public", "POST /staff/signin": "staff public",
    "GET /staff/enrol/{token}": "staff public", "POST /staff/enrol/{token}": "staff public",
    "GET /staff": "staff page", "POST /staff/signout": "staff",
    "GET /staff/customers": "staff page", "GET /staff/customers/{user_id}": "staff page",
    "POST /staff/customers/{user_id}/export": "staff", "POST /staff/customers/{user_id}/erase": "staff",
    "GET /staff/audit": "staff page",
}
_PLACEHOLDERS = {"{d}": "{device_id}", "{s}": "{share_id}", "{l}": "{link_id}", "{a}": "{alarm_id}",
                 "/channels/0": "/channels/{index}", "/recordings/0": "/recordings/{channel}"}


def _route_key(ep: Endpoint) -> str:
    path = "/api/v1" + ep.path.split("?")[0]
    for short, long in _PLACEHOLDERS.items():
        path = path.replace(short, long)
    return f"{ep.method} {path}"


def app_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route the app answers, HEAD aside (it follows GET)."""
    from fastapi.routing import iter_route_contexts

    out = []
    for rc in iter_route_contexts(app.routes):
        for method in sorted(rc.methods or ()):
            if method != "HEAD":
                out.append((method, rc.path))
    return out


def expected(ep: Endpoint, role: str) -> tuple[int, str | None]:
    if role == "stranger":
        return 404, "device-not-found"
    if role == "owner" or ep.permission in ("view", role):
        return ep.ok, None
    return 403, "owner-only" if ep.permission == "manage" else "permission-missing"


@dataclass
class World:
    ctx: Context
    client: httpx.AsyncClient
    gw: FakeGateway
    people: dict[str, Person]
    app: object = None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, pg_url):
    settings = Settings(data_dir=tmp_path_factory.mktemp("authz") / "data", database_url=pg_url, mqtt_mode="off",
                        media_rtmp_port=0, media_http_port=0,  # never a fixed port: other test runs share the machine
                        _env_file=None)
    settings.ensure_dirs()
    ctx = Context.build(settings)
    if ctx.db.dialect == "sqlite":
        # A throwaway database of ~1000 small commits: durability buys nothing here.
        @event.listens_for(ctx.db.engine.sync_engine, "connect")
        def _no_fsync(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=OFF")
            cur.close()

    if DB_KIND == "postgres":
        await _empty_pg(ctx)
    else:
        await ctx.db.create_all()
    app = create_app(ctx=ctx)
    async with app.router.lifespan_context(app):
        gw = FakeGateway()
        ctx.gateway = gw
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            # Somebody to invite by email: the owner's POST /shares needs a real account.
            await register(client, ctx, email="target@example.com", nickname="Target")
            people = {role: await person(ctx, role.title()) for role in [*ROLES, "friend"]}
            yield World(ctx, client, gw, people, app)
        ctx.gateway = None
    await ctx.close()


async def _device(w: World, needs: str = "") -> dict[str, str]:
    """A fresh NVR of the owner, shared with each invitee role, plus what the endpoint touches
    (``needs``: s a share of someone else, l a link, a an alarm and covers)."""
    ctx, owner = w.ctx, w.people["owner"]
    fd = await make_device(ctx, kind="nvr", channels=2, abilities=("PTZ",))
    device_id = (await service.add_device(ctx, owner.user_id, AddDeviceIn(serial=fd.serial, safety_code=fd.safety_code))).id
    await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    w.gw.connected.add(fd.serial)
    for role in authz.GRANTABLE:
        await grant(ctx, device_id, w.people[role], [role])
    ids = {"d": device_id, "serial": fd.serial}
    if "a" in needs:
        await service.set_cover(ctx, owner.user_id, device_id, png())
        await service.set_cover(ctx, owner.user_id, device_id, png(), channel=0)
        ids["a"] = await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=0, type="human", at=utcnow(),
                                                                          snapshot=jpeg()))
    if "s" in needs:
        ids["s"] = await grant(ctx, device_id, w.people["friend"], ["live"])
    if "l" in needs:
        ids["l"] = (await service.create_link(ctx, owner.user_id, device_id, ShareLinkIn(hours=1))).id
    return ids


@pytest.mark.req("B9", "SEC1")
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.id)
async def test_endpoint_matrix(world: World, ep: Endpoint, role: str):
    needs = "".join(k for k in "sla" if "{%s}" % k in ep.path) + ("a" if "cover" in ep.path else "")
    ids = await _device(world, needs)
    actor = world.people[role]
    url = "/api/v1" + ep.path.format(**ids)
    kw: dict = {"headers": actor.h}
    if ep.body == PNG:
        kw = {"content": png(), "headers": {**actor.h, "content-type": "image/png"}}
    elif ep.body is not None:
        kw["json"] = ep.body
    before = len(world.gw.calls)
    r = await world.client.request(ep.method, url, **kw)
    status, code = expected(ep, role)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["code"] == code
    else:
        assert r.status_code < 300
    # A refused request reaches no device.
    if status >= 400:
        assert world.gw.calls[before:] == []


@pytest.mark.req("B9")
@pytest.mark.parametrize("role", ROLES)
async def test_device_list_by_role(world: World, role: str):
    ids = await _device(world)
    listed = [d for d in (await world.client.get("/api/v1/devices", headers=world.people[role].h)).json()
              if d["id"] == ids["d"]]
    if role == "stranger":
        assert listed == []
        return
    (d,) = listed
    assert d["shared"] is (role != "owner")
    assert d["permissions"] == sorted(authz.PERMISSIONS if role == "owner" else ["view", role])
    # Invitees see no binding details of someone else's device.
    assert (d["serial"], d["mac"], d["ip"]) == ((ids["serial"], "02:11:22:33:44:55", "8.8.8.8") if role == "owner"
                                               else (None, None, None))


@pytest.mark.req("B9")
async def test_require_decides_every_permission_for_every_role(world: World):
    """The one decision other domains call (media asks for live and playback): every
    permission × every role."""
    ids = await _device(world)
    outcomes = {}
    for role in ROLES:
        for permission in authz.PERMISSIONS:
            try:
                outcomes[role, permission] = (await authz.require(world.ctx, world.people[role].user_id, ids["d"],
                                                                  permission)).role
            except NotFound:
                outcomes[role, permission] = 404
            except Forbidden:
                outcomes[role, permission] = 403
    for (role, permission), got in outcomes.items():
        if role == "stranger":
            want = 404
        elif role == "owner":
            want = "owner"
        else:
            want = "shared" if permission in ("view", role) else 403
        assert got == want, (role, permission)
    assert len(outcomes) == len(ROLES) * len(authz.PERMISSIONS)


@pytest.mark.req("B9")
async def test_unknown_and_malformed_ids_look_like_strangers(world: World):
    owner = world.people["owner"]
    for bad in ["0" * 32, "not-an-id", "A" * 64]:
        r = await world.client.get(f"/api/v1/devices/{bad}", headers=owner.h)
        assert (r.status_code, r.json()["code"]) == (404, "device-not-found")
    r = await world.client.get("/api/v1/devices/" + "x" * 65, headers=owner.h)
    assert r.status_code == 422


@pytest.mark.req("B9")
async def test_pending_invitation_and_channel_limits(world: World):
    ctx, owner = world.ctx, world.people["owner"]
    ids = await _device(world)
    pending = await person(ctx)
    await grant(ctx, ids["d"], pending, ["live", "control"], accepted=False)
    r = await world.client.get(f"/api/v1/devices/{ids['d']}", headers=pending.h)
    assert (r.status_code, r.json()["code"]) == (404, "device-not-found")
    # A share of channel 1 only: channel 0 is not there for the invitee.
    partial = await person(ctx)
    await grant(ctx, ids["d"], partial, ["control"], channels=[1])
    d = (await world.client.get(f"/api/v1/devices/{ids['d']}", headers=partial.h)).json()
    assert [c["index"] for c in d["channels"]] == [1]
    r = await world.client.post(f"/api/v1/devices/{ids['d']}/snapshot", json={"channel": 0}, headers=partial.h)
    assert (r.status_code, r.json()["code"]) == (404, "channel-not-found")
    assert (await world.client.post(f"/api/v1/devices/{ids['d']}/snapshot", json={"channel": 1},
                                    headers=partial.h)).status_code == 200
    assert (await world.client.get(f"/api/v1/devices/{ids['d']}/channels/0/cover", headers=partial.h)).status_code == 404
    assert (await world.client.get("/api/v1/devices", headers=owner.h)).status_code == 200


@pytest.mark.req("B9", "SEC1")
async def test_every_route_has_an_entry(world: World):
    """The route table, not a hand-kept list, is what must be covered."""
    matrix = {_route_key(ep) for ep in ENDPOINTS}
    routes = {f"{m} {p}" for m, p in app_routes(world.app)}
    missing = sorted(r for r in routes if r not in matrix and r not in OTHER_ROUTES)
    assert missing == [], "routes without an authorization entry (add them to ENDPOINTS or OTHER_ROUTES)"
    # Entries for routes that are gone would hide that the matrix no longer tests anything there.
    assert sorted((matrix | set(OTHER_ROUTES)) - routes) == []
    assert not matrix & set(OTHER_ROUTES)


@pytest.mark.req("B9", "SEC1")
async def test_signed_in_routes_refuse_signed_out_callers(world: World):
    """Every device route and every route marked signed-in answers 401 without credentials;
    every signed-in page sends the browser to sign in."""
    fill = {"{device_id}": "0" * 32, "{share_id}": "0" * 32, "{link_id}": "0" * 32, "{alarm_id}": "0" * 32,
            "{index}": "0", "{channel}": "0", "{kind}": "email", "{session_id}": "0" * 32, "{user_id}": "0" * 32}
    kinds = {**{_route_key(ep): "signed-in" for ep in ENDPOINTS}, **OTHER_ROUTES}
    checked = 0
    for key, kind in kinds.items():
        if kind not in ("signed-in", "signed-in page", "staff", "staff page"):
            continue
        method, path = key.split(" ", 1)
        for k, val in fill.items():
            path = path.replace(k, val)
        r = await world.client.request(method, path)
        if kind == "staff":
            assert (r.status_code, r.json().get("code")) == (401, "staff-signed-out"), key
            checked += 1
            continue
        if kind == "staff page":
            assert r.status_code == 303 and r.headers["location"].startswith("/staff/signin"), key
            checked += 1
            continue
        if kind == "signed-in":
            assert (r.status_code, r.json().get("code")) == (401, "signed-out"), key
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/signin"), key
        checked += 1
    assert checked > 60

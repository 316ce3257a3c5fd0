"""The detection settings API: the owner's, validated, problem details on bad input."""

from __future__ import annotations

import pytest

from faoyam.detection import service
from faoyam.media.motion import ZONE_ROWS
from tests.devices.conftest import grant, owned, person

URL = "/api/v1/devices/{d}/channels/{c}/detection"


@pytest.mark.req("B11")
async def test_the_owner_reads_defaults_and_turns_detection_on(ctx, client):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    r = await client.get(URL.format(d=device_id, c=0), headers=owner.h)
    assert r.status_code == 200
    assert r.json() == {"enabled": False, "sensitivity": 50, "zones": None, "stream": "main",
                        "grid": {"rows": 9, "cols": 16}}
    zones = [0] * (ZONE_ROWS - 1) + [0x00FF]
    r = await client.put(URL.format(d=device_id, c=0), headers=owner.h,
                         json={"enabled": True, "sensitivity": 70, "zones": zones, "stream": "sub"})
    assert r.status_code == 200 and r.json()["zones"] == zones
    assert (await client.get(URL.format(d=device_id, c=0), headers=owner.h)).json()["sensitivity"] == 70
    on = await service.enabled_channels(ctx.db)
    assert on == {(device_id, 0): service.ChannelDetection(True, 70, zones, "sub")}
    r = await client.put(URL.format(d=device_id, c=0), headers=owner.h, json={"enabled": False})
    assert r.json()["sensitivity"] == 50  # PUT replaces: what is left out takes its default
    assert await service.enabled_channels(ctx.db) == {}


@pytest.mark.req("B11")
@pytest.mark.parametrize("body, field", [
    ({"sensitivity": 0}, "sensitivity"),
    ({"sensitivity": 101}, "sensitivity"),
    ({"zones": [1, 2, 3]}, "zones"),
    ({"zones": [70000] * 9}, "zones"),
    ({"zones": [0] * 9}, "zones"),
    ({"stream": "third"}, "stream"),
])
async def test_bad_settings_are_problem_details(ctx, client, body, field):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    r = await client.put(URL.format(d=device_id, c=0), headers=owner.h, json={"enabled": True, **body})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "invalid-detection-settings"
    assert [e["field"] for e in problem["errors"]] == [field]
    assert await service.enabled_channels(ctx.db) == {}


@pytest.mark.req("B11")
async def test_wrong_types_unknown_fields_and_channels(ctx, client):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    for body in ({"enabled": "yes please"}, {"sensitivity": "high"}, {"color": "red"}):
        r = await client.put(URL.format(d=device_id, c=0), headers=owner.h, json=body)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body
    r = await client.get(URL.format(d=device_id, c=3), headers=owner.h)
    assert r.status_code == 404 and r.json()["code"] == "channel-not-found"


@pytest.mark.req("B11", "B9")
async def test_only_the_owner_manages_detection(ctx, client):
    owner, invitee, stranger = await person(ctx), await person(ctx), await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    await grant(ctx, device_id, invitee, ["live", "alarms", "control"])
    r = await client.put(URL.format(d=device_id, c=0), headers=invitee.h, json={"enabled": True})
    assert r.status_code == 403 and r.json()["code"] == "owner-only"
    r = await client.get(URL.format(d=device_id, c=0), headers=stranger.h)
    assert r.status_code == 404
    assert (await client.get(URL.format(d=device_id, c=0))).status_code == 401
    assert await service.enabled_channels(ctx.db) == {}

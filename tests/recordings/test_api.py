"""The recording API: settings and status per channel (owner sets, playback sees), and the
user deleting one recording, a range, or all of a channel's (R3 "videos"), rows and blobs."""

from __future__ import annotations

import datetime as dt

import pytest
import pytest_asyncio

from faoyam.core.database import new_id
from faoyam.core.storage import BlobNotFound, BlobStore
from faoyam.media.recorder import SEGMENT_KIND
from faoyam.privacy.blobrefs import sweep_tombstones
from faoyam.recordings import service
from tests.devices.conftest import grant, owned, person

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


@pytest_asyncio.fixture
async def camera(ctx, client):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    return owner, device_id


def url(device_id: str, tail: str = "recording", channel: int = 0) -> str:
    return f"/api/v1/devices/{device_id}/channels/{channel}/{tail}"


async def stored_segment(ctx, device_id: str, start: dt.datetime, seconds: int = 60, state: str = "complete") -> tuple[str, str]:
    """A segment row with a blob, as the recorder leaves it."""
    seg_id, key = new_id(), BlobStore.new_key(SEGMENT_KIND)
    await ctx.blobs.write(key, b"\0" * 100)
    await service.open_segment(ctx.db, segment_id=seg_id, device_id=device_id, channel=0, stream="main", start=start,
                               codec="avc1.64001f", width=320, height=240, backend=ctx.settings.blob_backend,
                               storage_key=key)
    if state != "writing":
        await service.finish_segment(ctx.db, seg_id, service.SegmentInfo(
            end=start + dt.timedelta(seconds=seconds), duration_ms=seconds * 1000, size=100, init_size=10,
            fragments=1, frames=1, keyframes=b""))
    return seg_id, key


async def gone(ctx, key: str) -> bool:
    await sweep_tombstones(ctx.db, ctx.blobs)
    try:
        await ctx.blobs.read(key)
    except BlobNotFound:
        return True
    return False


@pytest.mark.req("B5", "B12")
async def test_the_owner_sets_how_a_channel_records(ctx, client, camera):
    owner, device_id = camera
    r = await client.get(url(device_id), headers=owner.h)
    assert r.status_code == 200 and r.headers["cache-control"] == "private, no-store"
    body = r.json()
    assert body["configured"] is False and body["status"]["state"] == "off"
    assert body["settings"]["mode"] == "continuous" and body["stored"]["segments"] == 0
    schedule = [0xFFFF00] * 5 + [(1 << 24) - 1] * 2  # weekdays 08-23, weekends all day
    new = {"mode": "event", "schedule": schedule, "streams": ["main", "sub"], "destination": "both",
           "retention_days": 30, "quota_bytes": 50_000_000_000, "pre_roll_s": 3, "post_roll_s": 20}
    r = await client.put(url(device_id), json=new, headers=owner.h)
    assert r.status_code == 200, r.text
    assert r.json()["configured"] is True and r.json()["settings"] == new
    assert service.settings_dict(await service.channel_settings(ctx.db, device_id, 0)) == new
    assert (await client.get(url(device_id), headers=owner.h)).json()["settings"] == new


@pytest.mark.parametrize("bad, field", [
    ({"retention_days": 0}, "retention_days"),
    ({"schedule": [1, 2, 3]}, "schedule"),
    ({"schedule": [1 << 24] * 7}, "schedule"),
    ({"streams": ["sub"]}, "streams"),
    ({"quota_bytes": -5}, "quota_bytes"),
    ({"pre_roll_s": 99}, "pre_roll_s"),
])
async def test_bad_settings_are_problem_details_naming_the_field(ctx, client, camera, bad, field):
    owner, device_id = camera
    r = await client.put(url(device_id), json={"mode": "continuous", **bad}, headers=owner.h)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "invalid-recording-settings" and field in problem["detail"]
    assert await service.stored_channel_settings(ctx.db, device_id, 0) is None  # nothing stored


async def test_an_unknown_mode_or_destination_is_refused_by_the_schema(ctx, client, camera):
    owner, device_id = camera
    for bad in ({"mode": "sometimes"}, {"destination": "moon"}):
        r = await client.put(url(device_id), json=bad, headers=owner.h)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.req("B9")
async def test_who_may_see_and_change_the_recording(ctx, client, camera):
    owner, device_id = camera
    viewer, liver, stranger = await person(ctx), await person(ctx), await person(ctx)
    await grant(ctx, device_id, viewer, ["playback"])
    await grant(ctx, device_id, liver, ["live"])
    assert (await client.get(url(device_id), headers=viewer.h)).status_code == 200
    r = await client.put(url(device_id), json={"mode": "off"}, headers=viewer.h)
    assert (r.status_code, r.json()["code"]) == (403, "owner-only")
    assert (await client.get(url(device_id), headers=liver.h)).status_code == 403
    assert (await client.get(url(device_id), headers=stranger.h)).status_code == 404
    r = await client.get(url(device_id, channel=7), headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (404, "channel-not-found")


@pytest.mark.req("B5", "B12")
async def test_the_recorders_status_is_in_the_api(ctx, client, camera):
    owner, device_id = camera
    await client.put(url(device_id), json={"mode": "continuous"}, headers=owner.h)
    await service.set_status(ctx.db, device_id, 0, "paused: storage full")  # what the media worker writes
    status = (await client.get(url(device_id), headers=owner.h)).json()["status"]
    assert status["state"] == "paused" and status["detail"] == "paused: storage full" and status["at"]
    await service.set_status(ctx.db, device_id, 0, "recording")
    assert (await client.get(url(device_id), headers=owner.h)).json()["status"]["state"] == "recording"
    await client.put(url(device_id), json={"mode": "off"}, headers=owner.h)
    assert (await client.get(url(device_id), headers=owner.h)).json()["status"]["state"] == "off"


@pytest.mark.req("R3", "B5")
async def test_the_owner_deletes_one_recording_a_range_and_all(ctx, client, camera):
    owner, device_id = camera
    segs = [await stored_segment(ctx, device_id, T0 + dt.timedelta(minutes=i)) for i in range(6)]
    writing = await stored_segment(ctx, device_id, T0 + dt.timedelta(minutes=6), state="writing")
    listed = (await client.get(url(device_id, "recordings"), headers=owner.h)).json()
    assert [s["id"] for s in listed] == [writing[0]] + [s for s, _ in reversed(segs)]
    # One.
    r = await client.delete(url(device_id, f"recordings/{segs[0][0]}"), headers=owner.h)
    assert r.status_code == 204
    assert await gone(ctx, segs[0][1])
    r = await client.delete(url(device_id, f"recordings/{segs[0][0]}"), headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (404, "recording-not-found")
    # A range: minutes 2-4 overlap [T0+2m30s, T0+4m).
    q = {"start": (T0 + dt.timedelta(minutes=2, seconds=30)).isoformat(), "end": (T0 + dt.timedelta(minutes=4)).isoformat()}
    r = await client.delete(url(device_id, "recordings"), params=q, headers=owner.h)
    assert r.status_code == 200 and r.json() == {"deleted": 2}
    assert await gone(ctx, segs[2][1]) and await gone(ctx, segs[3][1]) and not await gone(ctx, segs[1][1])
    bad = await client.delete(url(device_id, "recordings"), params={"start": q["end"], "end": q["start"]}, headers=owner.h)
    assert (bad.status_code, bad.json()["code"]) == (422, "empty-range")
    # All: what is being written stays (it is the present).
    r = await client.delete(url(device_id, "recordings"), headers=owner.h)
    assert r.json() == {"deleted": 3}
    for _, key in segs:
        assert await gone(ctx, key)
    left = await service.segments(ctx.db, device_id, 0)
    assert [s.id for s in left] == [writing[0]]


@pytest.mark.req("R3", "B9")
async def test_an_invitee_cannot_delete_recordings(ctx, client, camera):
    owner, device_id = camera
    seg_id, key = await stored_segment(ctx, device_id, T0)
    invitee, stranger = await person(ctx), await person(ctx)
    await grant(ctx, device_id, invitee, ["playback", "live", "alarms", "control"])
    for who, status in ((invitee, 403), (stranger, 404)):
        assert (await client.delete(url(device_id, f"recordings/{seg_id}"), headers=who.h)).status_code == status
        assert (await client.delete(url(device_id, "recordings"), headers=who.h)).status_code == status
    assert (await client.get(url(device_id, "recordings"), headers=invitee.h)).status_code == 200
    assert not await gone(ctx, key)
    assert len(await service.segments(ctx.db, device_id, 0)) == 1

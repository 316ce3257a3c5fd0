"""Simulated H.265 cameras, as real ones come: H.265 with an H.264 sub-stream, and H.265
only. Each reports its streams in its configuration over MQTT; the devices domain records
them (``Device.config``) and reads them back per channel (``channel_streams``), which is what
the live view picks a browser's stream from. A camera without a sub-stream refuses to push one."""

from __future__ import annotations

import pytest

from faoyam.agent.media import SyntheticSource
from faoyam.agent.simulator import H264, H265_ONLY, H265_WITH_H264_SUB, make_fleet, stream_codecs
from faoyam.devices.channel_streams import channel_streams
from faoyam.devices.ports import NotSupported
from tests.gateway.conftest import bind, eventually, make_user, new_device, online


@pytest.mark.req("B4")
@pytest.mark.parametrize("source, expected", [
    (SyntheticSource(codec="h265", sub_codec="h264"), {"main": "h265", "sub": "h264"}),
    (SyntheticSource(codec="h265", sub_codec=None), {"main": "h265"}),
    (SyntheticSource(), {"main": "h264", "sub": "h264"}),
])
async def test_a_simulated_camera_reports_its_streams_and_the_devices_domain_records_them(
        service_factory, source, expected):
    ctx = await service_factory("embedded")
    ident = await new_device(ctx, "camera")
    agent = await online(ctx, ident, media=source)
    device_id = await bind(ctx, ident, await make_user(ctx))
    assert await channel_streams(ctx, device_id) == expected
    assert agent.config["mainStream"] == {"codec": source.codec, "resolution": "320x240"}
    if "sub" in expected:
        reply = await ctx.gateway.command(ident.serial, "start_stream", {"channel": 0, "stream": 1})
        assert reply["codec"] == expected["sub"]
    else:
        with pytest.raises(NotSupported):
            await ctx.gateway.command(ident.serial, "start_stream", {"channel": 0, "stream": 1})
        assert (0, 1) not in agent.streaming
    await agent.stop()


def test_the_fleet_has_both_kinds_of_h265_camera():
    fleet = make_fleet(cameras=4, nvr_channels=2, doorbells=1, seed=3)
    codecs = stream_codecs(fleet)
    cameras = [c for ident, c in zip(fleet, codecs, strict=True) if ident.kind == "camera"]
    assert cameras == [H264, H265_WITH_H264_SUB, H265_ONLY, H264]
    assert all(c == H264 for ident, c in zip(fleet, codecs, strict=True) if ident.kind != "camera")

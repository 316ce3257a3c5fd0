"""PTZ end to end over MQTT: the devices domain's command path (``control.ptz_move``, Imou
operations by name) to a simulated PTZ camera whose head moves with time and reports where
it points; refused for a camera without PTZ before anything is sent; rate-limited."""

from __future__ import annotations

import pytest

from faoyam.core.errors import TooManyRequests
from faoyam.devices import control
from faoyam.devices.ports import NotSupported
from tests.gateway.conftest import bind, eventually, make_user, new_device, online


async def position(ctx, user, dev) -> dict:
    return await control.ptz_position(ctx, user, dev, 0)


@pytest.mark.req("B4")
async def test_ptz_operations_move_the_simulated_head_and_it_reports_its_position(svc):
    ident = await new_device(svc, "camera", ptz=True)
    cam = await online(svc, ident)
    try:
        user = await make_user(svc)
        dev = await bind(svc, ident, user)
        assert await position(svc, user, dev) == {"channel": 0, "h": 0.0, "v": 0.0, "z": 0.0}
        # a 500 ms step right at full speed: a tenth of the pan range (SWEEP_S = 10 s for -1..1)
        await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 500, operation="right")
        await eventually(lambda: cam.ptz[0].position()["h"] >= 0.1 - 1e-9 and not cam.ptz[0].moving(), 5)
        moved = await position(svc, user, dev)
        assert moved["h"] == pytest.approx(0.1, abs=1e-6) and moved["v"] == 0 and moved["z"] == 0
        # hold "up" (a long move), then "stop": the head stays where it stopped
        await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 10_000, operation="up")
        await eventually(lambda: cam.ptz[0].position()["v"] > 0.02, 5)
        stopped = await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 50, operation="stop")
        assert 0.02 < stopped["v"] < 1 and not cam.ptz[0].moving()
        assert await position(svc, user, dev) == stopped
        # zoom and speeds
        await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 1000, operation="zoom_in")
        await control.ptz_move(svc, user, dev, 0, -0.5, 0, 0, 1000)  # replaces the zoom at once
        await eventually(lambda: not cam.ptz[0].moving(), 5)
        final = await position(svc, user, dev)
        assert final["z"] < 0.05  # the zoom ran only for the next command's round trip (< 0.5 s)
        assert final["h"] == pytest.approx(0.0, abs=1e-6)  # half speed for 1 s: back by 0.1, to 0
        located = await control.ptz_locate(svc, user, dev, 0, -0.5, 0.25, 0.5)
        assert located == {"channel": 0, "h": -0.5, "v": 0.25, "z": 0.5}
    finally:
        await cam.stop()


async def test_a_camera_without_ptz_is_refused_before_anything_is_sent(svc):
    ident = await new_device(svc, "camera")
    cam = await online(svc, ident)
    try:
        user = await make_user(svc)
        dev = await bind(svc, ident, user)
        commands = cam.stats.commands
        with pytest.raises(NotSupported):
            await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 500, operation="left")
        assert cam.stats.commands == commands
    finally:
        await cam.stop()


async def test_ptz_moves_are_rate_limited_per_account_and_device(svc, monkeypatch):
    monkeypatch.setattr(control, "PTZ_PER_MINUTE", 3)
    ident = await new_device(svc, "camera", ptz=True)
    cam = await online(svc, ident)
    try:
        user = await make_user(svc)
        dev = await bind(svc, ident, user)
        for _ in range(3):
            await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 50, operation="stop")
        with pytest.raises(TooManyRequests):
            await control.ptz_move(svc, user, dev, 0, 0, 0, 0, 50, operation="stop")
        assert cam.ptz[0].moves == 3
    finally:
        await cam.stop()

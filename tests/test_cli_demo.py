"""``faoyam demo`` as a new user sees it: devices a person can tell apart, an alarm with a
picture soon after start (so Messages is not empty), and the MQTT port when it is not 1883."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import select

from faoyam.agent.demo import start_demo_devices
from faoyam.agent.simulator import make_fleet
from faoyam.alarms.models import AlarmEvent as Alarm
from tests.gateway.conftest import make_user, service_factory  # noqa: F401 - the fixture


def _device_names(fleet) -> list[str]:
    """What the app lists: each device's name, and each NVR channel's."""
    return [n for ident in fleet for n in ident.channel_names]


@pytest.mark.parametrize("cameras, nvr_channels, doorbells", itertools.product([0, 1, 3, 9], [0, 4, 8], [0, 1, 2]))
def test_every_simulated_device_and_channel_has_a_name_of_its_own(cameras, nvr_channels, doorbells):
    for seed in range(5):
        fleet = make_fleet(cameras, nvr_channels, doorbells, seed=seed)
        names = _device_names(fleet)
        assert len(names) == cameras + nvr_channels + 2 * doorbells
        assert len(set(names)) == len(names), names
    if doorbells:
        assert next(i for i in fleet if i.kind == "doorbell").channel_names == ("Front door",)


def test_the_same_seed_gives_the_same_names():
    assert _device_names(make_fleet(3, 4, 1, seed=7)) == _device_names(make_fleet(3, 4, 1, seed=7))


@pytest.mark.req("B11")
async def test_the_demo_raises_an_alarm_with_a_snapshot_soon_after_start(service_factory):  # noqa: F811
    svc = await service_factory("embedded")
    user = await make_user(svc)
    # Once an hour on average: what arrives within the deadline is the first alarm of start-up.
    handle = await start_demo_devices(svc, user, cameras=1, nvr_channels=2, doorbells=1, alarm_every=3600)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            async with svc.db.session() as s:
                alarms = (await s.execute(select(Alarm))).scalars().all()
            if alarms or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert len(alarms) == 1, "no alarm after start"
        assert alarms[0].snapshot_key and alarms[0].device_id in handle.device_ids
        assert handle.broker_port == svc.mqtt_port != 1883
    finally:
        await handle.stop()


async def test_the_demo_says_where_its_broker_is_when_not_on_1883(settings, capsys):
    from faoyam.app import create_app
    from faoyam.core.context import Context

    ctx = Context.build(settings.model_copy(update={"mqtt_mode": "embedded", "mqtt_port": 0, "demo": True}))
    await ctx.db.create_all()
    application = create_app(ctx=ctx)
    async with application.router.lifespan_context(application):
        port = ctx.mqtt_port
    await ctx.close()
    out = capsys.readouterr().out
    assert "Demo account:  demo@example.com" in out
    assert f"listens on port {port} (not 1883)" in out and f"faoyam simulate --port {port}" in out


def test_a_generated_demo_password_always_passes_the_account_policy():
    from faoyam.accounts.validation import check_password
    from faoyam.demo.lifecycle import DEMO_EMAIL, _new_password

    for _ in range(200):
        pw = _new_password(3)
        check_password(pw, min_score=3, user_inputs=[DEMO_EMAIL])
        assert len(set(pw.split("-")[:3])) == 3

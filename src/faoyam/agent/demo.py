"""Simulated devices for ``faoyam demo``: made at the factory, added to an account through
the registry's own ``add_device`` (as a person would, with serial and safety code), and
run in this process against the service's broker.

    handle = await start_demo_devices(ctx, user_id)
    ...
    await handle.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from faoyam.agent.device import Identity
from faoyam.agent.simulator import Simulator, load_state, make_fleet
from faoyam.devices import service
from faoyam.devices.gateway import factory_register
from faoyam.devices.schemas import AddDeviceIn

log = logging.getLogger("faoyam.agent.demo")


# The first alarm comes this soon after start, so the Messages tab has something to show.
FIRST_ALARM_AFTER_S = 5.0


@dataclass
class DemoDevices:
    simulator: Simulator
    identities: list[Identity]
    device_ids: list[str] = field(default_factory=list)
    _life: asyncio.Task | None = None

    @property
    def broker_port(self) -> int:
        """The MQTT port the devices use (the embedded broker may have taken a free one)."""
        return self.simulator.port

    async def stop(self) -> None:
        if self._life:
            self._life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._life
        await self.simulator.stop()


async def start_demo_devices(ctx, owner_user_id: str, *, cameras: int = 2, nvr_channels: int = 4, doorbells: int = 1,
                             life: bool = True, alarm_every: float = 90.0, wait: bool = True,
                             state_file=None) -> DemoDevices:
    """Factory-register a small fleet, bind it to the account and run it in-process.

    Each device has a name of its own; with ``life`` they raise an alarm with a snapshot
    every ``alarm_every`` seconds on average across the fleet, the first a few seconds
    after start.

    Needs the gateway started (``mqtt_mode`` embedded or external). Chimes are bound with
    their doorbell by ``add_device``; everything else is added one by one. Returns a
    handle; it is also kept in ``ctx.demo_devices`` so the devices stop with the
    service.
    """
    if ctx.gateway is None:
        raise RuntimeError("the device gateway is not running (mqtt_mode is off?)")
    fleet = make_fleet(cameras, nvr_channels, doorbells)
    for ident in fleet:
        await factory_register(ctx, ident.factory_device())
    handle = DemoDevices(Simulator(fleet, _host(ctx), ctx.mqtt_port, state_file=state_file), fleet)
    if state_file:
        handle.simulator._save()  # keep the factory secrets: the next start resumes this fleet
    for ident in fleet:
        if ident.kind == "chime":
            continue  # comes with its doorbell
        name = ident.channel_names[0] if ident.kind != "nvr" else "Home NVR"
        out = await service.add_device(ctx, owner_user_id, AddDeviceIn(serial=ident.serial, safety_code=ident.safety_code,
                                                                     name=name, time_zone="Asia/Bangkok"))
        handle.device_ids.append(out.id)
    handle.simulator.start()
    return await _run(ctx, handle, fleet, life=life, alarm_every=alarm_every, wait=wait)


async def resume_demo_devices(ctx, owner_user_id: str, *, state_file, life: bool = True, alarm_every: float = 90.0,
                              wait: bool = True) -> DemoDevices:
    """Run the demo fleet of an earlier start again (same serials, their saved credentials).

    Starts a new fleet instead when there is no saved fleet or its devices are no longer
    bound to the demo account (deleted in the app, say)."""
    bound = {d.serial for d in await service.list_devices(ctx, owner_user_id) if not d.shared}
    fleet = load_state(state_file) if Path(state_file).exists() else []
    if not fleet or not {i.serial for i in fleet if i.kind != "chime"} <= bound:
        return await start_demo_devices(ctx, owner_user_id, life=life, alarm_every=alarm_every, wait=wait,
                                        state_file=state_file)
    handle = DemoDevices(Simulator(fleet, _host(ctx), ctx.mqtt_port, state_file=state_file), fleet)
    handle.simulator.start()
    return await _run(ctx, handle, fleet, life=life, alarm_every=alarm_every, wait=wait)


async def _run(ctx, handle: DemoDevices, fleet, *, life: bool, alarm_every: float, wait: bool) -> DemoDevices:
    if wait:
        await handle.simulator.wait_connected(30)
        await ctx.gateway.wait_connected([i.serial for i in fleet], 30)
    if life:
        handle._life = asyncio.create_task(handle.simulator.life(alarm_every=alarm_every, flap_every=300,
                                                                 first_alarm_after=FIRST_ALARM_AFTER_S))
    ctx.demo_devices = handle
    log.info("demo devices running", extra={"devices": len(fleet)})
    return handle


def _host(ctx) -> str:
    host = ctx.settings.mqtt_host
    return "127.0.0.1" if host in ("0.0.0.0", "") else host

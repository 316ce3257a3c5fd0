"""Background services of the devices domain: the MQTT broker (embedded mode) and the
device gateway, started with the application and stopped with it.

``mqtt_mode``:
* ``embedded`` — amqtt in this process on ``mqtt_host:mqtt_port`` (port 0: any free
  port; the bound one is ``ctx.extras["mqtt_port"]``); devices sign in through the registry.
* ``external`` — Mosquitto (or another broker with Mosquitto's dynamic security) at
  ``mqtt_host:mqtt_port``; the gateway signs in with ``mqtt_username``/``mqtt_password``
  and provisions device accounts there.
* ``off`` — no gateway (tests of other domains).
"""

from __future__ import annotations

import logging

from faoyam.devices import service as reg
from faoyam.devices.gateway.core import DeviceGateway, _NoAdmin
from faoyam.devices.gateway.embedded import EmbeddedBroker
from faoyam.devices.gateway.mosquitto import DynsecAdmin
from faoyam.privacy.subjects import ERASURE_HOOKS

log = logging.getLogger("faoyam.gateway")


async def start(ctx, *, options=None) -> None:
    s = ctx.settings
    if s.mqtt_mode == "off":
        return
    if s.mqtt_mode == "embedded":
        broker = EmbeddedBroker(s.mqtt_host, s.mqtt_port, lambda u, pw: reg.authenticate_device(ctx, u, pw))
        await broker.start()
        ctx.extras["mqtt_broker"] = broker
        gw = DeviceGateway(ctx, host=s.mqtt_host, port=broker.port, username=broker.service_user,
                           password=broker.service_password, options=options, registry=reg,
                           admin=_NoAdmin(broker.kick))
        broker.policy.on_factory_connect = gw.remember_address
        port = broker.port
    else:
        gw = DeviceGateway(ctx, host=s.mqtt_host, port=s.mqtt_port, username=s.mqtt_username or "faoyam-gateway",
                           password=s.mqtt_password or "", options=options, registry=reg, external=True)
        gw.admin = DynsecAdmin(gw.publish_raw)
        port = s.mqtt_port
    try:
        await gw.start()
    except BaseException:
        await _stop_broker(ctx)
        raise
    ctx.extras["gateway"] = gw
    ctx.extras["mqtt_port"] = port
    _watch_erasures(ctx, reg)
    log.info("device gateway started", extra={"mode": s.mqtt_mode})


async def _stop_broker(ctx) -> None:
    broker = ctx.extras.pop("mqtt_broker", None)
    if broker is not None:
        await broker.stop()


def _watch_erasures(ctx, reg) -> None:
    """When an account is erased its devices' credentials are wiped with the rest; this
    also closes their live broker connections at once, instead of at their next reconnect."""
    async def hook(subject):
        if not subject.user_id:
            return None
        serials = [d.serial for d in await reg.list_devices(ctx, subject.user_id) if not d.shared and d.serial]

        async def after():
            gw = ctx.extras.get("gateway")
            for serial in serials:
                if gw is not None:
                    await gw.disconnect(serial)

        return after if serials else None

    ERASURE_HOOKS.append(hook)
    ctx.extras["erasure_hook"] = hook


async def stop(ctx) -> None:
    hook = ctx.extras.pop("erasure_hook", None)
    if hook in ERASURE_HOOKS:
        ERASURE_HOOKS.remove(hook)
    demo = ctx.extras.pop("demo_devices", None)
    if demo is not None:
        await demo.stop()
    gw = ctx.extras.pop("gateway", None)
    if gw is not None:
        await gw.stop()
    await _stop_broker(ctx)
    ctx.extras.pop("mqtt_port", None)

"""Background services of the devices domain: the MQTT broker (embedded mode) and the
device gateway, or a gateway client, started with the process and stopped with it.

``mqtt_mode``:
* ``embedded`` — amqtt in the gateway process on ``mqtt_host:mqtt_port`` (port 0: any
  free port; the bound one is ``ctx.mqtt_port``); devices sign in through the registry.
  amqtt has no shared subscriptions, so there is one gateway process per embedded broker.
* ``external`` — Mosquitto (or another broker with Mosquitto's dynamic security) at
  ``mqtt_host:mqtt_port``; the gateway signs in with ``mqtt_username``/``mqtt_password``
  and provisions device accounts there. Any number of gateway processes share the uplink.
* ``off`` — no gateway (tests of other domains).

A process with the ``gateway`` role (``ctx.roles``) runs the gateway (and the embedded
broker); any other process gets a gateway *client* at ``ctx.gateway``: it sends commands,
reads the shared online state and asks the gateway nodes to drop deleted devices
(docs/process-roles.md).
"""

from __future__ import annotations

import dataclasses
import logging

from faoyam.core.context import Context
from faoyam.core.security import keyed_hash
from faoyam.devices import commands
from faoyam.devices import service as reg
from faoyam.devices.gateway.core import DeviceGateway, GatewayOptions, _NoAdmin
from faoyam.devices.gateway.embedded import EmbeddedBroker
from faoyam.devices.gateway.mosquitto import DynsecAdmin
from faoyam.privacy.subjects import ERASURE_HOOKS

log = logging.getLogger("faoyam.gateway")
SERVICE_USER = "faoyam-gateway"


def embedded_service_password(ctx: Context) -> str:
    """The service client's password on the embedded broker: derived from the deployment
    key, so the web process can sign in to the broker the gateway process runs."""
    return keyed_hash(ctx.key, "embedded-broker-service")


async def start(ctx: Context, *, options=None) -> None:
    s = ctx.settings
    if s.mqtt_mode == "off":
        return
    runs_gateway = "gateway" in ctx.roles
    external = s.mqtt_mode == "external"
    options = options or GatewayOptions()
    if external and options.share_group is None:  # Mosquitto: gateway nodes share the uplink
        options = dataclasses.replace(options, share_group="faoyam")
    if external:
        user, password, port = s.mqtt_username or SERVICE_USER, s.mqtt_password or "", s.mqtt_port
    else:
        user, password, port = SERVICE_USER, embedded_service_password(ctx), s.mqtt_port
    if runs_gateway and not external:
        broker = EmbeddedBroker(s.mqtt_host, s.mqtt_port, lambda u, pw: reg.authenticate_device(ctx, u, pw),
                                service_password=password)
        await broker.start()
        ctx.broker = broker
        port = broker.port
    host = "127.0.0.1" if s.mqtt_host in ("0.0.0.0", "") else s.mqtt_host
    gw = DeviceGateway(ctx, host=host, port=port, username=user, password=password, options=options,
                       registry=reg, external=external, uplink=runs_gateway,
                       admin=None if external else _NoAdmin(ctx.broker.kick if ctx.broker else None))
    if external:
        gw.admin = DynsecAdmin(gw.publish_raw)
    if ctx.broker is not None:
        ctx.broker.policy.on_factory_connect = gw.remember_address
    try:
        # A client waits briefly: its broker may be another process that starts later.
        await gw.start(wait=runs_gateway or external)
    except BaseException:
        await _stop_broker(ctx)
        raise
    ctx.gateway = gw
    ctx.mqtt_port = port
    _watch_erasures(ctx, reg)
    log.info("device gateway started" if runs_gateway else "device gateway client started",
             extra={"mode": s.mqtt_mode})


async def _stop_broker(ctx: Context) -> None:
    broker, ctx.broker = ctx.broker, None
    if broker is not None:
        await broker.stop()


def _watch_erasures(ctx: Context, reg) -> None:
    """When an account is erased its devices' bindings go with the rest; this closes their
    live broker connections at once (instead of at their next reconnect), and then erases
    again whatever a report in flight wrote while the erasure ran (``commands.released``)."""

    async def hook(subject):
        if not subject.user_id:
            return None
        owned = [(d.id, d.serial) for d in await reg.list_devices(ctx, subject.user_id) if not d.shared]
        if not owned:
            return None

        async def after():
            await commands.released(ctx, [i for i, _ in owned], [s for _, s in owned if s])

        return after

    ERASURE_HOOKS.append(hook)
    ctx.erasure_hook = hook


async def stop(ctx: Context) -> None:
    hook, ctx.erasure_hook = ctx.erasure_hook, None
    if hook in ERASURE_HOOKS:
        ERASURE_HOOKS.remove(hook)
    demo, ctx.demo_devices = ctx.demo_devices, None
    if demo is not None:
        await demo.stop()
    gw, ctx.gateway = ctx.gateway, None
    if gw is not None:
        await gw.stop()
    await _stop_broker(ctx)
    ctx.mqtt_port = None

"""The MQTT device gateway (see ``core.py``) and the device protocol (``protocol.py``,
docs/device-protocol.md). ``lifecycle.py`` of the devices domain starts it."""

from __future__ import annotations

import importlib

from faoyam.devices import ports


async def factory_register(ctx, device: ports.FactoryDevice) -> None:
    """The manufacturing step: the registry records the device, and on an external broker
    the gateway creates its factory account there (the embedded broker asks the registry
    at every sign-in, so nothing more is needed). The simulator, the demo and the
    benchmark make their devices with this."""
    reg = importlib.import_module("faoyam.devices.service")
    await reg.factory_register(ctx, device)
    gw = ctx.gateway
    if gw is not None:
        await gw.provision_factory(device)

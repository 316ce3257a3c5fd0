"""Heartbeat cost: messages per second one gateway handles on Mosquitto, before and after
coalescing, in the same run.

    python bench/bench_heartbeats.py --devices 200 --messages 3000 --runs 3

Per run, against one Mosquitto and one database (SQLite in a temporary directory, or
``--db postgresql+asyncpg://...``), with ``--devices`` activated, bound devices:

* baseline: a bare aiomqtt subscriber on ``faoyam/d/+/up/heartbeat`` — time until it has
  received all ``--messages`` (what the broker and one MQTT client can do);
* per-message: the gateway as it was before, one registry transaction (and one presence
  write) per heartbeat — time until every heartbeat is stored;
* batched: the gateway now, heartbeats noted by the workers and written by the flusher in
  one transaction per flush — time until every heartbeat is noted and the last flush done.

The same publisher sends the same kind of messages each time (QoS 1, unique ids, one
status per message, spread round-robin over the devices); the per-device rate limit is
lifted for the benchmark. Figures are medians over ``--runs``, each with its ratio to the
baseline; the speed-up is batched / per-message.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


async def _publish(port: int, user: str, password: str, serials: list[str], n: int) -> None:
    import aiomqtt

    from faoyam.devices.gateway import protocol as p

    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              identifier=f"bench-pub-{p.new_id()}") as c:
        c.pending_calls_threshold = 1000  # a window of 20 is what we want; no warnings about it
        pending = []
        for i in range(n):
            serial = serials[i % len(serials)]
            pending.append(c.publish(p.up(serial, p.HEARTBEAT), p.dumps(p.envelope(status={"rssi": -40 - i % 30})),
                                     qos=1))
            if len(pending) >= 20:  # Mosquitto's in-flight window
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)


async def _baseline(port, user, password, serials, n) -> float:
    import aiomqtt

    from faoyam.devices.gateway import protocol as p

    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              identifier=f"bench-sub-{p.new_id()}", max_queued_incoming_messages=n + 10) as c:
        await c.subscribe(p.topic("+", "up", p.HEARTBEAT), qos=1)
        t0 = time.perf_counter()
        pub = asyncio.create_task(_publish(port, user, password, serials, n))
        got = 0
        async for _ in c.messages:
            got += 1
            if got >= n:
                break
        elapsed = time.perf_counter() - t0
        await pub
        return elapsed


def _per_message_class():
    from faoyam.devices.gateway import presence
    from faoyam.devices.gateway.core import DeviceGateway, _at, _now

    class PerMessageGateway(DeviceGateway):
        """The path before coalescing: a transaction per heartbeat."""

        async def _on_heartbeat(self, serial, msg):
            now = _now()
            await self.reg.heartbeat(self.ctx, serial, min(_at(msg.ts), now), msg.status)
            did = await self.device_id(serial)
            if did is not None:
                await presence.beat(self.ctx.db, {did: now}, self.node)

    return PerMessageGateway


async def _gateway_run(ctx, mosq, serials, n, cls) -> float:
    from faoyam.devices.gateway.core import GatewayOptions
    from faoyam.devices.gateway.guard import GuardOptions

    opts = GatewayOptions(heartbeat_s=30, guard=GuardOptions(rate=1e9, burst=1e9), queue_size=max(10_000, 2 * n))
    gw = cls(ctx, host="127.0.0.1", port=mosq.port, username=mosq.service_user, password=mosq.service_password,
             options=opts, external=True)
    await gw.start()
    try:
        for s in serials:  # warm the id cache: both paths have it
            await gw.device_id(s)
        t0 = time.perf_counter()
        await _publish(mosq.port, mosq.service_user, mosq.service_password, serials, n)
        while gw.stats["handled.heartbeat"] + gw.stats["errors"] < n:
            await asyncio.sleep(0.005)
        await gw.flush()
        elapsed = time.perf_counter() - t0
        assert gw.stats["errors"] == 0, gw.stats
        return elapsed
    finally:
        await gw.stop()


async def main(args) -> None:
    from faoyam.agent.simulator import make_identity
    from faoyam.core.config import Settings
    from faoyam.core.context import Context
    from faoyam.devices import service
    from faoyam.devices.gateway import factory_register
    from faoyam.devices.gateway.core import DeviceGateway
    from faoyam.devices.gateway.mosquitto import MosquittoProcess
    from faoyam.devices.ports import ActivationReport
    from faoyam.devices.schemas import AddDeviceIn
    from tests.gateway.conftest import make_user

    tmp = Path(tempfile.mkdtemp(prefix="faoyam-bench-hb-"))
    s = Settings(data_dir=tmp / "data", database_url=args.db or None, mqtt_mode="external", log_level="WARNING",
                 _env_file=None)
    ctx = Context.build(s)
    import faoyam.models  # noqa: F401 - every domain's tables, so create_all makes them all

    await ctx.db.create_all()
    rng = random.Random(7)
    uid = await make_user(ctx)
    serials = []
    for _ in range(args.devices):
        ident = make_identity("camera", rng)
        await factory_register(ctx, ident.factory_device())
        await service.add_device(ctx, uid, AddDeviceIn(serial=ident.serial, safety_code=ident.safety_code))
        await service.activate(ctx, ident.serial, ActivationReport(
            mac="02:11:22:33:44:55", model=ident.model, firmware="1.0", channels=[{"index": 0}]), None)
        serials.append(ident.serial)
    per_message = _per_message_class()
    figures: dict[str, list[float]] = {"baseline": [], "per-message": [], "batched": []}
    with MosquittoProcess(tmp / "mosquitto") as mosq:
        for run in range(args.runs):
            n = args.messages
            figures["baseline"].append(n / await _baseline(mosq.port, mosq.service_user, mosq.service_password,
                                                            serials, n))
            figures["per-message"].append(n / await _gateway_run(ctx, mosq, serials, n, per_message))
            figures["batched"].append(n / await _gateway_run(ctx, mosq, serials, n, DeviceGateway))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in figures.items()), flush=True)
    await ctx.close()
    med = {k: statistics.median(v) for k, v in figures.items()}
    db = "PostgreSQL" if args.db else "SQLite"
    print(f"\nheartbeats one gateway handles on Mosquitto ({db}, {args.devices} devices, {args.messages} messages, "
          f"median of {args.runs}):")
    print(f"  bare aiomqtt subscriber (baseline) {med['baseline']:>9,.0f} msg/s")
    for k in ("per-message", "batched"):
        print(f"  gateway, {k:<26}{med[k]:>9,.0f} msg/s   {med[k] / med['baseline']:.2f}x baseline")
    print(f"  batched / per-message: {med['batched'] / med['per-message']:.1f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", default="", help="a database URL (default: SQLite in a temporary directory)")
    asyncio.run(main(ap.parse_args()))

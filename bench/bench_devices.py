"""Device gateway benchmark: many simulated devices on one service through Mosquitto.

    python bench/bench_devices.py --devices 1000 --kill 100 --runs 3

What one run does, with a fresh service process each time (same database, same broker):
1. start the service (the gateway in ``mqtt_mode = "external"``), note its RSS;
2. start the devices (already activated) in worker processes, W devices each, and time
   until the service has every one of them online in the registry -> connect time; note
   the service's RSS again -> memory per connected device = RSS delta / n;
3. SIGKILL the workers holding ``--kill`` devices (connections dropped without
   DISCONNECT, so Mosquitto publishes their last wills) and time until the service has
   marked every killed device offline in the registry -> offline time.

Baselines, measured in the same run without the service in the path:
* connect: the same n devices as bare aiomqtt clients (same credentials, same broker),
  time until every CONNACK;
* memory: RSS delta / n of a process holding those n bare client connections (what one
  MQTT connection costs a Python process; the service holds none, the broker does);
* offline: time until a bare subscriber receives all the killed devices' last wills.

Figures are medians over ``--runs``; each comes with its ratio to the baseline. The
setup (factory registration, activation) is timed once and reported, not compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


# -- the service process ----------------------------------------------------------------------
async def service_main(args) -> None:
    """Run the gateway; report RSS, then when all devices are online, then when the killed
    ones are offline (JSON lines on stdout)."""
    from faoyam.core.config import Settings
    from faoyam.core.context import Context
    from faoyam.devices import lifecycle
    from faoyam.devices.gateway.core import GatewayOptions

    s = Settings(data_dir=Path(args.data), database_url=args.db or None, mqtt_mode="external", mqtt_host="127.0.0.1",
                 mqtt_port=args.port, mqtt_username=args.user, mqtt_password=args.password, log_level="WARNING",
                 _env_file=None)
    ctx = Context.build(s)
    await lifecycle.start(ctx, options=GatewayOptions(heartbeat_s=30))
    gw = ctx.gateway
    serials = json.loads(Path(args.serials).read_text())
    everyone, killed = set(serials["all"]), set(serials["killed"])
    import gc

    gc.collect()
    out(event="ready", rss=rss())
    await gw.wait_until(lambda: everyone <= gw.online(), 600)
    t = time.time()
    gc.collect()
    out(event="online", t=t, rss=rss())
    await gw.wait_until(lambda: not (killed & gw.online()), 600)
    out(event="offline", t=time.time())
    await asyncio.Event().wait()


def out(**kw) -> None:
    print(json.dumps(kw), flush=True)


# -- baselines (bare clients) -----------------------------------------------------------------
async def bare_main(args) -> None:
    import aiomqtt

    ids = [json.loads(line) for line in Path(args.creds).read_text().splitlines()]
    before = rss()
    clients = [aiomqtt.Client("127.0.0.1", args.port, username=u, password=pw, identifier=u) for u, pw in ids]
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(200)

    async def enter(c):
        async with sem:
            await c.__aenter__()

    await asyncio.gather(*(enter(c) for c in clients))
    elapsed = time.perf_counter() - t0
    import gc

    gc.collect()
    out(connect_s=elapsed, rss_per_client=(rss() - before) / len(clients))
    await asyncio.gather(*(c.__aexit__(None, None, None) for c in clients), return_exceptions=True)


async def wills_baseline(port, user, password, killed: set[str], ready: asyncio.Event, done: asyncio.Future):
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              identifier=f"bench-watch-{os.getpid()}") as c:
        await c.subscribe("faoyam/d/+/up/state", qos=1)
        ready.set()
        seen: set[str] = set()
        async for msg in c.messages:
            if msg.retain or not msg.payload:
                continue
            serial = str(msg.topic).split("/")[2]
            if serial in killed and b'"online":false' in bytes(msg.payload):
                seen.add(serial)
                if seen >= killed and not done.done():
                    done.set_result(time.time())
                    return


# -- orchestration ----------------------------------------------------------------------------
class Proc:
    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
                                  text=True, env=env)

    def go(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def line(self, timeout=600) -> str:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("no output from a bench process")
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"bench process exited ({self.p.poll()})")
        return line

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        self.p.wait(30)


def workers_for(state_dir: Path, identities, per_worker: int):
    from faoyam.agent.simulator import save_state

    files = []
    for i in range(0, len(identities), per_worker):
        f = state_dir / f"worker{i // per_worker:03d}.json"
        save_state(f, identities[i:i + per_worker])
        files.append(f)
    return files


def start_workers(files, port, *, save=False, on_go=None) -> list[Proc]:
    """Start the worker processes, wait until each has loaded, then let them all connect
    at once (``on_go`` is called just before) and wait until each has its devices up."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "faoyam.agent.simulator", "--port", str(port), "--heartbeat", "30", "--wait-go",
            "--timeout", "900"]
    procs = [Proc(argv + ["--state", str(f)] + (["--save"] if save else []), env) for f in files]
    for p in procs:
        assert p.line().startswith("loaded"), "a device worker did not load"
    if on_go:
        on_go()
    for p in procs:
        p.go()
    for p in procs:
        assert p.line().startswith("ready"), "a device worker did not get ready"
    return procs


async def setup(args, work: Path, mosq) -> dict:
    """Factory-register and activate every device once (through a service)."""
    from faoyam import models  # noqa: F401 - create_all below makes every domain's tables
    from faoyam.agent.simulator import load_state, make_cameras
    from faoyam.core.config import Settings
    from faoyam.core.context import Context
    from faoyam.devices import lifecycle
    from faoyam.devices.gateway import factory_register

    s = Settings(data_dir=work / "data", database_url=args.db or None, mqtt_mode="external", mqtt_port=mosq.port,
                 mqtt_username=mosq.service_user, mqtt_password=mosq.service_password, log_level="WARNING", _env_file=None)
    ctx = Context.build(s)
    import faoyam.models  # noqa: F401 - every domain's tables, so create_all makes them all

    await ctx.db.create_all()
    await lifecycle.start(ctx)
    fleet = make_cameras(args.devices, seed=args.seed)
    t0 = time.perf_counter()
    for i in range(0, len(fleet), 50):
        await asyncio.gather(*(factory_register(ctx, f.factory_device()) for f in fleet[i:i + 50]))
    t_register = time.perf_counter() - t0
    files = workers_for(work / "devices", fleet, args.per_worker)
    t0 = time.perf_counter()
    procs = []
    for f in files:  # in waves: Mosquitto rewrites its dynamic-security file on every change
        procs += await asyncio.to_thread(start_workers, [f], mosq.port, save=True)
    t_activate = time.perf_counter() - t0
    for p in procs:
        p.kill()
    gw = ctx.gateway
    await gw.wait_until(lambda: not gw.online(), 120)
    await lifecycle.stop(ctx)
    await ctx.close()
    activated = [i for f in files for i in load_state(f)]
    assert all(i.password for i in activated), "some devices did not activate"
    return {"files": files, "identities": activated, "register_s": t_register, "activate_s": t_activate}


async def one_run(args, work: Path, mosq, st: dict, run: int) -> dict:
    files, ids = st["files"], st["identities"]
    per = args.per_worker
    n_kill_workers = max(1, args.kill // per)
    killed = [i.serial for f in files[:n_kill_workers] for i in ids[files.index(f) * per:(files.index(f) + 1) * per]]
    serials = work / "serials.json"
    serials.write_text(json.dumps({"all": [i.serial for i in ids], "killed": killed}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    # baseline: bare clients
    creds = work / "creds.jsonl"
    creds.write_text("\n".join(json.dumps([i.username, i.password]) for i in ids))
    bare = Proc([sys.executable, __file__, "--role", "bare", "--creds", str(creds), "--port", str(mosq.port)], env)
    base = json.loads(bare.line())
    bare.kill(signal.SIGTERM)

    svc = Proc([sys.executable, __file__, "--role", "service", "--data", str(work / "data"), "--port", str(mosq.port),
                "--user", mosq.service_user, "--password", mosq.service_password, "--serials", str(serials)]
               + (["--db", args.db] if args.db else []), env)
    ready = json.loads(svc.line())
    t0: list[float] = []
    procs = await asyncio.to_thread(start_workers, files, mosq.port, on_go=lambda: t0.append(time.time()))
    online = json.loads(await asyncio.to_thread(svc.line))
    connect_s = online["t"] - t0[0]

    watch_ready, watch_done = asyncio.Event(), asyncio.get_running_loop().create_future()
    watcher = asyncio.create_task(wills_baseline(mosq.port, mosq.service_user, mosq.service_password, set(killed),
                                                 watch_ready, watch_done))
    await watch_ready.wait()
    t_kill = time.time()
    for p in procs[:n_kill_workers]:
        p.kill()
    offline = json.loads(await asyncio.to_thread(svc.line))
    t_will = await asyncio.wait_for(watch_done, 120)
    watcher.cancel()
    for p in procs[n_kill_workers:]:
        p.kill()
    svc.kill(signal.SIGTERM)
    r = {
        "run": run, "devices": len(ids), "killed": len(killed),
        "connect_s": connect_s, "connect_bare_s": base["connect_s"],
        "mem_per_device_b": (online["rss"] - ready["rss"]) / len(ids), "mem_per_bare_client_b": base["rss_per_client"],
        "offline_s": offline["t"] - t_kill, "offline_bare_s": t_will - t_kill,
    }
    print(json.dumps(r), file=sys.stderr, flush=True)
    return r


def summarise(runs: list[dict], st: dict) -> dict:
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k not in ("run",)}
    return {
        "devices": int(med["devices"]), "killed": int(med["killed"]), "runs": len(runs),
        "setup": {"factory_register_s": round(st["register_s"], 2), "activate_all_s": round(st["activate_s"], 2)},
        "connect_s": round(med["connect_s"], 3), "connect_bare_s": round(med["connect_bare_s"], 3),
        "connect_ratio": round(med["connect_s"] / med["connect_bare_s"], 2),
        "mem_per_device_kib": round(med["mem_per_device_b"] / 1024, 2),
        "mem_per_bare_client_kib": round(med["mem_per_bare_client_b"] / 1024, 2),
        "mem_ratio": round(med["mem_per_device_b"] / med["mem_per_bare_client_b"], 3) if med["mem_per_bare_client_b"] else None,
        "offline_s": round(med["offline_s"], 3), "offline_bare_s": round(med["offline_bare_s"], 3),
        "offline_ratio": round(med["offline_s"] / med["offline_bare_s"], 2) if med["offline_bare_s"] > 0 else None,
    }


async def bench(args) -> dict:
    from faoyam.devices.gateway.mosquitto import MosquittoProcess

    with tempfile.TemporaryDirectory(prefix="faoyam-bench-") as tmp:
        work = Path(tmp)
        with MosquittoProcess(work / "mosquitto") as mosq:
            st = await setup(args, work, mosq)
            runs = [await one_run(args, work, mosq, st, i + 1) for i in range(args.runs)]
    return summarise(runs, st)


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=60)
    ap.add_argument("--kill", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-worker", type=int, default=None, help="devices per worker process (default: kill count)")
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--role", default="bench", choices=("bench", "service", "bare"), help=argparse.SUPPRESS)
    ap.add_argument("--data"), ap.add_argument("--port", type=int), ap.add_argument("--user")
    ap.add_argument("--password"), ap.add_argument("--serials"), ap.add_argument("--creds")
    args = ap.parse_args(argv)
    if args.role == "service":
        asyncio.run(service_main(args))
        return None
    if args.role == "bare":
        asyncio.run(bare_main(args))
        return None
    args.per_worker = args.per_worker or max(1, min(args.kill, args.devices))
    result = asyncio.run(bench(args))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

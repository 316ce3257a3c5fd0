"""API read-path benchmark: the real service against a bare FastAPI app, same JSON, same run.

    python bench/bench_api.py --runs 3 --seconds 4 --clients 16
    python bench/bench_api.py --profile      # where one request's time goes (cProfile, SQL count)
    python bench/bench_api.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
                                             # the same on PostgreSQL (a fresh database, dropped after)

What a run does:
1. seeds a demo-like account in a fresh SQLite database: four devices of its own (two
   cameras, an NVR with four channels, a doorbell with its chime: five units) and one
   camera another account shared with it, a few alarms with snapshots;
2. starts the real service (``create_app``: every router, middleware, logging) under
   uvicorn in its own process, and a bare FastAPI app under the same uvicorn in another,
   which answers the same paths with the same JSON bytes captured from the service;
3. drives each with ``--clients`` concurrent httpx clients for ``--seconds`` per path:
   the device list, one device's page data (``GET /devices/{id}``), and the message list
   (the device's alarms: there is no account-wide message list yet).

Prints req/s, p50 and p99 per path and server, and the service's ratio to the bare app's
throughput; with ``--runs`` > 1, the medians. Both servers listen on sockets bound to port 0
by this script and handed over as file descriptors (no fixed ports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PASSWORD = "violet-harbour-kettle-91"


def settings_for(data: Path):
    """The service's settings; ``BENCH_DATABASE_URL`` (set by ``--postgres``, inherited by the
    server processes) selects the database, else SQLite in ``data``."""
    from faoyam.core.config import Settings

    return Settings(data_dir=data, mqtt_mode="off", jobs_enabled=False, media_rtmp_port=0, media_http_port=0, log_level=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
                    database_url=os.environ.get("BENCH_DATABASE_URL") or None, _env_file=None)


@contextlib.asynccontextmanager
async def fresh_postgres(url: str | None):
    """A new, empty database on the PostgreSQL server of ``url`` for this run (dropped after),
    published as ``BENCH_DATABASE_URL``; nothing without ``url`` (SQLite)."""
    if not url:
        yield
        return
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"faoyam_bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    os.environ["BENCH_DATABASE_URL"] = make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        yield
    finally:
        os.environ.pop("BENCH_DATABASE_URL", None)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def seed(data: Path) -> dict:
    """The demo-like account; returns its bearer token and the paths to measure."""
    import io
    import itertools

    from PIL import Image

    from faoyam.accounts import service as accounts
    from faoyam.alarms import service as alarms
    from faoyam.accounts.schemas import Terminal
    from faoyam.core.context import Context
    from faoyam.core.database import utcnow
    from faoyam.devices import service
    from faoyam.devices.models import Share
    from faoyam.devices.ports import ActivationReport, AlarmReport, FactoryDevice
    from faoyam.devices.schemas import AddDeviceIn

    ctx = Context.build(settings_for(data))
    import faoyam.models  # noqa: F401 - every domain's tables, so create_all makes them all

    await ctx.db.create_all()
    serials = itertools.count(1)
    pic = io.BytesIO()
    Image.new("RGB", (320, 180), (40, 90, 160)).save(pic, "JPEG")

    async def unit(owner: str, kind: str, channels: int, paired_with: str | None = None, bind: bool = True) -> tuple[str, str]:
        fd = FactoryDevice(serial=f"FYB{next(serials):07d}X", kind=kind, model=f"FY-{kind.upper()}-1", channels=channels,
                           safety_code="LC7Q2K", factory_secret="factory-secret-1", abilities=("MD", "PTZ")[:1 + (kind == "nvr")],
                           paired_with=paired_with)
        await service.factory_register(ctx, fd)
        device_id = ""
        if bind:
            device_id = (await service.add_device(ctx, owner, AddDeviceIn(serial=fd.serial, safety_code=fd.safety_code,
                                                                         name=f"{kind.title()} {fd.serial[-4:]}"))).id
        await service.activate(ctx, fd.serial, ActivationReport(
            mac="02:11:22:33:44:55", model=fd.model, firmware="2.840.0000000.1.R",
            channels=[{"index": i, "name": f"Channel {i + 1}", "abilities": ["MD"]} for i in range(channels)],
            config={"motion": {"enabled": True, "sensitivity": 5}, "led": "on", "osd": {"time": True}}), "192.0.2.10")
        return device_id, fd.serial

    uid = await accounts.create_account(ctx, email="demo@example.com", phone=None, country="TH", nickname="Demo",
                                        password=PASSWORD)
    friend = await accounts.create_account(ctx, email="friend@example.com", phone=None, country="TH", nickname="Friend",
                                           password=PASSWORD)
    cam, cam_serial = await unit(uid, "camera", 1)
    await unit(uid, "camera", 1)
    await unit(uid, "nvr", 4)
    _, bell = await unit(uid, "doorbell", 1, bind=False)
    await unit(uid, "chime", 0, paired_with=bell, bind=False)
    # The doorbell brings its chime along when added.
    from faoyam.devices.registry import find_by_serial  # noqa: F401 - the same path as the app

    await service.add_device(ctx, uid, AddDeviceIn(serial=bell, safety_code="LC7Q2K", name="Front door"))
    shared, _ = await unit(friend, "camera", 1)
    async with ctx.db.transaction() as s:
        s.add(Share(device_id=shared, invitee_id=uid, invited_via="email", permissions=["live", "alarms"],
                    channels=None, status="accepted", accepted_at=utcnow()))
    for i in range(12):
        await alarms.record_device_alarm(ctx, cam_serial, AlarmReport(channel=0, type="human", at=utcnow(),
                                                                snapshot=pic.getvalue() if i % 3 == 0 else None))
    new = await accounts.sign_in(ctx, "demo@example.com", PASSWORD, None, Terminal(), "127.0.0.1")
    await ctx.close()
    return {"token": new.token, "paths": {"device list": "/api/v1/devices", "device page": f"/api/v1/devices/{cam}",
                                          "message list": f"/api/v1/devices/{cam}/alarms"}}


# -- the two servers ---------------------------------------------------------------------------


def serve_main(args) -> None:
    import uvicorn

    if args.serve == "service":
        from faoyam.app import create_app

        app = create_app(settings_for(Path(args.data)))
    else:
        from fastapi import FastAPI
        from fastapi.responses import Response

        bodies = json.loads(Path(args.bodies).read_text())
        app = FastAPI()

        def route(body: str):
            async def answer():
                return Response(body, media_type="application/json")
            return answer

        for path, body in bodies.items():
            app.add_api_route(path, route(body), methods=["GET"])
    uvicorn.run(app, fd=args.fd, log_level="warning", access_log=False, log_config=None, lifespan="on")


def start_server(kind: str, data: Path, bodies: Path | None) -> tuple[subprocess.Popen, int]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    port = sock.getsockname()[1]
    cmd = [sys.executable, __file__, "--serve", kind, "--data", str(data), "--fd", str(sock.fileno())]
    if bodies:
        cmd += ["--bodies", str(bodies)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, pass_fds=[sock.fileno()], env=env)
    sock.close()
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def wait_ready(port: int, path: str, headers: dict) -> None:
    import httpx

    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            try:
                if (await c.get(f"http://127.0.0.1:{port}{path}", headers=headers)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, path: str, headers: dict, clients: int, seconds: float, pid: int | None = None) -> dict:
    """``clients`` concurrent httpx clients, each sending requests one after another; with
    ``pid``, also the server's CPU milliseconds per request — the figure that holds on a
    loaded machine, where req/s follows whatever else runs."""
    import httpx

    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as c:
            while (t0 := time.perf_counter()) < stop:
                r = await c.get(path)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code}")
                latencies.append(time.perf_counter() - t0)

    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(clients)])
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0 if pid else float("nan")
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000, "cpu_ms": cpu * 1000 / len(latencies)}


async def bench(args) -> None:
    import httpx

    async with fresh_postgres(args.postgres):
        await _bench(args)


async def _bench(args) -> None:
    import httpx

    with tempfile.TemporaryDirectory(prefix="faoyam-bench-api-") as tmp:
        data = Path(tmp) / "data"
        info = await seed(data)
        print(f"database: {settings_for(data).db_url.split('://')[0]}")
        headers = {"Authorization": f"Bearer {info['token']}"}
        service, sport = start_server("service", data, None)
        try:
            await wait_ready(sport, "/healthz", {})
            bodies = {}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sport}", headers=headers) as c:
                for path in info["paths"].values():
                    bodies[path] = (await c.get(path)).text
            bodies_file = Path(tmp) / "bodies.json"
            bodies_file.write_text(json.dumps(bodies))
            bare, bport = start_server("bare", data, bodies_file)
            try:
                await wait_ready(bport, info["paths"]["device list"], {})
                for name, path in info["paths"].items():
                    print(f"{name}: {path} ({len(bodies[path].encode())} bytes of JSON)")
                results: dict[str, dict[str, list[dict]]] = {}
                for run in range(args.runs):
                    for name, path in info["paths"].items():
                        for server, port, pid in (("service", sport, service.pid), ("bare", bport, bare.pid)):
                            await drive(port, path, headers, args.clients, 0.5)  # warm up
                            r = await drive(port, path, headers, args.clients, args.seconds, pid)
                            results.setdefault(name, {}).setdefault(server, []).append(r)
                            print(f"  run {run + 1} {name:13s} {server:8s} {r['rps']:7.0f} req/s  p50 {r['p50']:6.1f} ms"
                                  f"  p99 {r['p99']:6.1f} ms  {r['cpu_ms']:.2f} CPU-ms/request", flush=True)
                print(f"\nmedians of {args.runs} run(s), {args.clients} concurrent clients, {args.seconds:g} s per measurement")
                for name, by_server in results.items():
                    med = {srv: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "cpu_ms")}
                           for srv, rs in by_server.items()}
                    s, b = med["service"], med["bare"]
                    print(f"{name:13s} service {s['rps']:6.0f} req/s p50 {s['p50']:6.1f} ms p99 {s['p99']:6.1f} ms "
                          f"{s['cpu_ms']:.2f} CPU-ms | bare {b['rps']:6.0f} req/s p50 {b['p50']:6.1f} ms "
                          f"p99 {b['p99']:6.1f} ms {b['cpu_ms']:.2f} CPU-ms | ratio {s['rps'] / b['rps']:.2f}x throughput, "
                          f"{b['cpu_ms'] / s['cpu_ms']:.2f}x by CPU per request")
            finally:
                stop_server(bare)
        finally:
            stop_server(service)


async def profile(args) -> None:
    async with fresh_postgres(args.postgres):
        await _profile(args)


async def _profile(args) -> None:
    """One process, no network: cProfile of N requests per path and the SQL statements each runs."""
    import cProfile
    import pstats

    import httpx
    from sqlalchemy import event

    from faoyam.app import create_app
    from faoyam.core.context import Context

    with tempfile.TemporaryDirectory(prefix="faoyam-bench-api-") as tmp:
        data = Path(tmp) / "data"
        info = await seed(data)
        ctx = Context.build(settings_for(data))
        statements: list[str] = []
        event.listen(ctx.db.engine.sync_engine, "before_cursor_execute",
                     lambda conn, cur, stmt, *a: statements.append(stmt))
        app = create_app(ctx=ctx)
        headers = {"Authorization": f"Bearer {info['token']}"}
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers) as c:
            for name, path in info["paths"].items():
                await c.get(path)
                statements.clear()
                await c.get(path)
                print(f"{name}: {len(statements)} SQL statements per request")
                for st in statements:
                    print("   ", " ".join(st.split())[:150])
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(args.requests):
                    await c.get(path)
                prof.disable()
                stats = pstats.Stats(prof)
                stats.sort_stats(args.sort).print_stats(30)
                if os.environ.get("BENCH_CALLERS"):  # who calls a function: BENCH_CALLERS=find_spec
                    stats.print_callers(os.environ["BENCH_CALLERS"])
        await ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--postgres", metavar="URL", help="run on a fresh database of this PostgreSQL server (asyncpg URL)")
    ap.add_argument("--profile", action="store_true", help="profile in one process instead of benchmarking")
    ap.add_argument("--requests", type=int, default=200, help="requests per path with --profile")
    ap.add_argument("--sort", default="tottime", help="cProfile sort key with --profile")
    ap.add_argument("--serve", choices=["service", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--bodies", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_main(args)
    elif args.profile:
        asyncio.run(profile(args))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()

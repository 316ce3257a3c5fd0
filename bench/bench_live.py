"""Live view benchmark (B4): latency, time to first frame, fan-out CPU, a stuck viewer's memory.

    python bench/bench_live.py                       # 1080p 4 Mbit/s, 50 viewers
    python bench/bench_live.py --width 1280 --height 720 --bitrate 2000000 --viewers 20 --seconds 10

A **server process** plays the media worker: one camera hub fed at real-time rate from a
pre-encoded H.264+AAC clip (looped, timestamps rewritten), served two ways on free ports:

* ours — :class:`faoyam.media.live_http.LiveServer` under uvicorn (token check, one-use
  replay guard, revocation poll, batched writes, close codes);
* baseline — a bare ``websockets`` server that subscribes each connection to the same hub
  and sends every chunk as it comes: what the same bytes cost without our layer.

The **clients** (this process) connect with ``websockets``. The server records the wall
time at which each video frame is handed to the hub (the "device send" instant); a client
reads the decode time of each fragment it receives (``tfdt``) and so knows which frame
arrived when. Both processes are on this machine, so ``time.time()`` is one clock.

With ``--ingest rtmp`` the camera pushes over RTMP into the ingest server instead (in the
server process), and the send instant is when a frame's bytes go to the publisher's socket:
the latency is then device send → viewer receive, RTMP read batching included.

Figures (medians / percentiles over the run; each with its ratio to the baseline):
1. latency send → receive, p50 / p99, one viewer;
2. time to first frame: connect (ours: with a fresh token) → first keyframe fragment;
3. fan-out: N viewers for S seconds, the server's CPU per viewer (its CPU with N viewers
   minus its CPU with none, over N); clients that fell behind and were dropped are counted;
4. memory: the server's RSS every second while one viewer never reads (it is dropped
   when its bounded queue overflows a few times), against the same span with no viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faoyam.media.ids import ChannelId  # noqa: E402
from faoyam.media.live_http import DEFAULT_VIEWER_QUEUE_BYTES  # noqa: E402

CAM = ChannelId("b" * 32, 0, "main")


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


# -- the server process -------------------------------------------------------------------------
async def serve(args) -> None:
    import uvicorn
    from websockets.asyncio.server import serve as ws_serve

    from faoyam.media import RtmpServer, StreamHubs
    from faoyam.media.live_http import LiveServer
    from faoyam.media.testfeed import feed_realtime
    from faoyam.media.testvideo import cached_clip

    clip = cached_clip(width=args.width, height=args.height, bitrate=args.bitrate, seconds=4.0, audio=True)
    hubs = StreamHubs()
    hub = hubs.hub(CAM)
    stamps: dict[int, float] = {}

    def stamp(dts_ms: int, _perf: float) -> None:
        stamps[dts_ms] = time.time()
        if len(stamps) > 5000:
            for key in list(stamps)[:1000]:
                del stamps[key]

    rtmp = None
    if args.ingest == "rtmp":
        rtmp = await RtmpServer(hubs, lambda app, key: CAM, read_interval=args.read_interval).start()
        camera = asyncio.create_task(push_rtmp(f"rtmp://127.0.0.1:{rtmp.port}/live/bench", clip, stamp))
    else:
        hub.attach(Camera())
        camera = asyncio.create_task(feed_realtime(hub, clip, on_frame=stamp))
    live = LiveServer(hubs, os.environ["BENCH_KEY"].encode())
    config = uvicorn.Config(live.app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                            log_config=None, lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    server_task = asyncio.create_task(server.serve())

    async def bare(ws):
        sub = hub.subscribe(queue_bytes=live.viewer_queue_bytes)
        try:
            async for chunks in sub:
                for chunk in chunks:
                    await ws.send(chunk)
        except Exception:
            pass
        finally:
            sub.close()

    async with ws_serve(bare, "127.0.0.1", 0, max_size=None, compression=None) as bare_server:
        while not server.started:
            await asyncio.sleep(0.02)
        bare_port = bare_server.sockets[0].getsockname()[1] if hasattr(bare_server, "sockets") else \
            list(bare_server.server.sockets)[0].getsockname()[1]
        live_port = server.servers[0].sockets[0].getsockname()[1]
        print(json.dumps({"live_port": live_port, "bare_port": bare_port, "bitrate": clip.bitrate,
                          "size": [clip.width, clip.height]}), flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            if line == "stats":
                dropped = sum(1 for s in live.sessions if s.sub.closed_reason)
                out = {"cpu": cpu_seconds(), "rss": rss(), "sessions": len(live.sessions),
                       "subscribers": len(hub.subscribers), "dropped": dropped,
                       "queued": max((s.sub.queued_bytes for s in live.sessions), default=0)}
            elif line == "stamps":
                out = {"stamps": stamps}
            else:
                break
            print(json.dumps(out), flush=True)
    camera.cancel()
    if rtmp is not None:
        await rtmp.close()
    server.should_exit = True
    await server_task


class Camera:
    """Attached to the hub like an ingest connection (direct feeding), so the hub stays
    while viewers come and go."""

    def close(self, reason: str) -> None:
        pass


async def push_rtmp(url: str, clip, stamp) -> None:
    """The camera over RTMP, at real-time rate; a frame's send instant is when its bytes are
    handed to the socket."""
    from faoyam.media.rtmp_publisher import RtmpPublisher

    publisher = RtmpPublisher(url)
    await publisher.connect()
    publisher.send_configs(clip)
    start = time.perf_counter()
    for n, (kind, packet) in enumerate(clip.loop()):
        delay = start + packet.dts / 1000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if kind == "video":
            publisher.send_video(clip.codec, packet)
            stamp(packet.dts, 0.0)
        else:
            publisher.send_audio(packet)
        if n % 50 == 0:
            await publisher.drain()


# -- the clients --------------------------------------------------------------------------------
class Server:
    def __init__(self, args):
        self.key = secrets.token_urlsafe(32)
        cmd = [sys.executable, __file__, "--serve", "--width", str(args.width), "--height", str(args.height),
               "--bitrate", str(args.bitrate), "--ingest", args.ingest, "--read-interval", str(args.read_interval)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "BENCH_KEY": self.key})
        self.info = json.loads(self.proc.stdout.readline())

    def ask(self, what: str) -> dict:
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def live_url(self) -> str:
        from faoyam.media.tokens import mint

        return f"ws://127.0.0.1:{self.info['live_port']}/media/live/{mint(self.key.encode(), CAM, 'user:bench')}"

    def bare_url(self) -> str:
        return f"ws://127.0.0.1:{self.info['bare_port']}/"

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(20)


class Client:
    """One viewer: counts bytes; optionally notes (arrival time, first video dts) per message."""

    def __init__(self, url: str, record: bool = False):
        self.url, self.record = url, record
        self.arrivals: list[tuple[float, int]] = []
        self.bytes = 0
        self.first_keyframe_at: float | None = None
        self.connected_at = 0.0
        self.closed_code: int | None = None

    async def run(self, stop: asyncio.Event):
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        from faoyam.media.testfeed import fragments

        self.connected_at = time.perf_counter()
        try:
            async with connect(self.url, max_size=None, compression=None) as ws:
                while not stop.is_set():
                    try:
                        message = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        continue
                    if isinstance(message, str):
                        continue
                    now = time.time()
                    self.bytes += len(message)
                    if message[4:8] == b"ftyp":
                        continue
                    if self.first_keyframe_at is None:
                        self.first_keyframe_at = time.perf_counter()
                    if self.record:
                        video = [f for f in fragments(message) if f.track_id == 1]
                        if video:
                            self.arrivals.append((now, round(video[0].video_ms)))
        except ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd else 1006


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def latency(server: Server, url: str, seconds: float) -> list[float]:
    stop = asyncio.Event()
    client = Client(url, record=True)
    task = asyncio.create_task(client.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    stamps = {int(k): v for k, v in server.ask("stamps")["stamps"].items()}
    # Skip the first GOP: it was sent at once on joining (it is old by design).
    skip = next((i for i, (t, _) in enumerate(client.arrivals) if t - client.arrivals[0][0] > 2.5), 0)
    return [(t - stamps[dts]) * 1000 for t, dts in client.arrivals[skip:] if dts in stamps]


async def first_frame(url_factory, joins: int) -> list[float]:
    out = []
    for _ in range(joins):
        stop = asyncio.Event()
        client = Client(url_factory())
        task = asyncio.create_task(client.run(stop))
        t0 = time.perf_counter()
        while client.first_keyframe_at is None and time.perf_counter() - t0 < 10:
            await asyncio.sleep(0.002)
        stop.set()
        await task
        if client.first_keyframe_at is not None:
            out.append((client.first_keyframe_at - client.connected_at) * 1000)
        await asyncio.sleep(0.05)
    return out


async def fan_out(server: Server, url_factory, viewers: int, seconds: float) -> dict:
    stop = asyncio.Event()
    clients = [Client(url_factory()) for _ in range(viewers)]
    tasks = [asyncio.create_task(c.run(stop)) for c in clients]
    await asyncio.sleep(2.0)  # everyone connected and past the first GOP
    a, bytes_a = server.ask("stats"), sum(c.bytes for c in clients)
    await asyncio.sleep(seconds)
    b, bytes_b = server.ask("stats"), sum(c.bytes for c in clients)
    stop.set()
    await asyncio.gather(*tasks)
    return {"cpu": b["cpu"] - a["cpu"], "mbit": (bytes_b - bytes_a) * 8 / seconds / 1e6,
            "dropped": sum(1 for c in clients if c.closed_code not in (None, 1000))}


async def idle_cpu(server: Server, seconds: float) -> float:
    a = server.ask("stats")
    await asyncio.sleep(seconds)
    return server.ask("stats")["cpu"] - a["cpu"]


async def stuck_memory(server: Server, url: str | None, seconds: float) -> dict:
    sock = None
    if url is not None:
        host_port, path = url.removeprefix("ws://").split("/", 1)
        host, port = host_port.split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    samples, dropped_after, seen, t0 = [], None, False, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        stats = server.ask("stats")
        samples.append(stats["rss"])
        seen = seen or stats["sessions"] > 0
        if seen and dropped_after is None and stats["sessions"] == 0:
            dropped_after = time.perf_counter() - t0
        await asyncio.sleep(1.0)
    if sock is not None:
        sock.close()
    return {"start": samples[0], "max": max(samples), "end": samples[-1], "dropped_after": dropped_after}


async def main(args) -> None:
    server = Server(args)
    try:
        info = server.info
        print(f"camera: {info['size'][0]}×{info['size'][1]} H.264 + AAC, {info['bitrate'] / 1e6:.1f} Mbit/s video, 25 fps; "
              f"ingest: {'RTMP, read interval %g s' % args.read_interval if args.ingest == 'rtmp' else 'direct to the hub'}")
        await asyncio.sleep(3)  # a GOP or so running

        ours = await latency(server, server.live_url(), args.seconds)
        base = await latency(server, server.bare_url(), args.seconds)
        p50, p99, b50, b99 = pct(ours, .5), pct(ours, .99), pct(base, .5), pct(base, .99)
        print(f"1. latency send → receive (per message, its first frame), WebSocket: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(ours)} frames); "
              f"bare websockets p50 {b50:.1f} ms, p99 {b99:.1f} ms; ratio p50 {p50 / b50:.2f}, p99 {p99 / b99:.2f}")

        ttff = await first_frame(server.live_url, args.joins)
        ttff_base = await first_frame(server.bare_url, args.joins)
        print(f"2. time to first frame (connect → first keyframe fragment): p50 {statistics.median(ttff):.1f} ms, "
              f"p99 {pct(ttff, .99):.1f} ms over {len(ttff)} joins; bare websockets p50 {statistics.median(ttff_base):.1f} ms; "
              f"ratio {statistics.median(ttff) / statistics.median(ttff_base):.2f}")

        idle = await idle_cpu(server, args.seconds)
        fo = await fan_out(server, server.live_url, args.viewers, args.seconds)
        fo_base = await fan_out(server, server.bare_url, args.viewers, args.seconds)
        per = (fo["cpu"] - idle) / args.viewers / args.seconds * 100
        per_base = (fo_base["cpu"] - idle) / args.viewers / args.seconds * 100
        print(f"3. fan-out, 1 camera → {args.viewers} viewers for {args.seconds:.0f} s: server CPU {per:.2f} % of a core "
              f"per viewer ({fo['mbit']:.0f} Mbit/s out, {fo['dropped']} dropped); bare websockets {per_base:.2f} % "
              f"({fo_base['mbit']:.0f} Mbit/s, {fo_base['dropped']} dropped); ratio {per / per_base:.2f}; "
              f"camera alone {idle / args.seconds * 100:.1f} %")

        calm = await stuck_memory(server, None, args.memory_seconds)
        stuck = await stuck_memory(server, server.live_url(), args.memory_seconds)
        grow, grow_base = (stuck["max"] - stuck["start"]) / 1e6, (calm["max"] - calm["start"]) / 1e6
        print(f"4. memory with one viewer that never reads, {args.memory_seconds:.0f} s: RSS {stuck['start'] / 1e6:.1f} → "
              f"max {stuck['max'] / 1e6:.1f} → {stuck['end'] / 1e6:.1f} MB (+{grow:.1f} MB; dropped as too slow after "
              f"{stuck['dropped_after'] or float('nan'):.0f} s); no viewer: +{grow_base:.1f} MB over the same span; "
              f"per-viewer hub queue bound {DEFAULT_VIEWER_QUEUE_BYTES >> 20} MiB")
    finally:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--bitrate", type=int, default=4_000_000)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--memory-seconds", type=float, default=30.0)
    parser.add_argument("--ingest", choices=("hub", "rtmp"), default="hub",
                        help="hub: frames handed to the hub directly (the viewer side alone); rtmp: the camera "
                             "pushes over RTMP into the ingest server (device send → viewer receive)")
    parser.add_argument("--read-interval", type=float, default=0.1, help="the RTMP server's read batching (s)")
    arguments = parser.parse_args()
    asyncio.run(serve(arguments) if arguments.serve else main(arguments))

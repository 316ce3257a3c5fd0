"""A minimal RTSP server for tests: one H.264 stream (synthetic, libx264 through PyAV),
RTP over the RTSP TCP connection (interleaved, RFC 2326 §10.12; H.264 payload RFC 6184
with FU-A fragmentation). Enough for FFmpeg's RTSP client (PyAV) to pull it like a camera.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import struct
import threading

from faoyam.agent.media import SyntheticSource


def _nals(annexb: bytes) -> list[bytes]:
    out, i, n = [], 0, len(annexb)
    starts = []
    while i < n - 3:
        if annexb[i:i + 3] == b"\x00\x00\x01":
            starts.append(i + 3)
            i += 3
        elif annexb[i:i + 4] == b"\x00\x00\x00\x01":
            starts.append(i + 4)
            i += 4
        else:
            i += 1
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else n
        nal = annexb[s:e].rstrip(b"\x00") if k + 1 < len(starts) else annexb[s:e]
        if nal:
            out.append(nal)
    return out


class RtspServer:
    def __init__(self, fps: int = 10, width: int = 320, height: int = 240):
        self.source = SyntheticSource(width=width, height=height, fps=fps)
        self.fps = fps
        first = next(iter(self.source.packets(0, 0.2)))
        nals = _nals(first.data)
        self.sps = next(x for x in nals if x[0] & 0x1F == 7)
        self.pps = next(x for x in nals if x[0] & 0x1F == 8)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.clients = 0

    async def start(self) -> RtspServer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"rtsp://user:secret@127.0.0.1:{self.port}/live/ch0"

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    def _sdp(self) -> bytes:
        sprop = f"{base64.b64encode(self.sps).decode()},{base64.b64encode(self.pps).decode()}"
        return (f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=faoyam test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                f"a=fmtp:96 packetization-mode=1;profile-level-id={self.sps[1:4].hex()};sprop-parameter-sets={sprop}\r\n"
                f"a=control:track1\r\n").encode()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        play: asyncio.Task | None = None
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # RTCP from the client, interleaved: skip
                    _, size = struct.unpack(">BH", await reader.readexactly(3))
                    await reader.readexactly(size)
                    continue
                head = first + await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                hdr = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                if int(hdr.get("content-length", 0)):
                    await reader.readexactly(int(hdr["content-length"]))
                cseq = hdr.get("cseq", "0")
                extra, body = "", b""
                if method == "OPTIONS":
                    extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
                elif method == "DESCRIBE":
                    body = self._sdp()
                    extra = f"Content-Base: {url.rstrip('/')}/\r\nContent-Type: application/sdp\r\n"
                elif method == "SETUP":
                    extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4242;timeout=60\r\n"
                elif method == "PLAY":
                    extra = "Session: 4242\r\n"
                elif method == "TEARDOWN":
                    writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode())
                    break
                else:
                    writer.write(f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n".encode())
                    continue
                writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                if method == "PLAY" and play is None:
                    play = asyncio.create_task(self._stream(writer))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if play:
                play.cancel()
                with contextlib.suppress(BaseException):
                    await play
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        q: asyncio.Queue = asyncio.Queue(maxsize=30)
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def produce():
            try:
                for pkt in self.source.packets(0, None):
                    if stop.is_set():
                        return
                    asyncio.run_coroutine_threadsafe(q.put(pkt), loop).result(5)
            except Exception:  # the loop is gone: the test is over
                return

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        seq, ssrc = random.randrange(65536), random.getrandbits(32)
        try:
            while True:
                pkt = await q.get()
                ts = int((pkt.pts or 0) * 90000 / self.fps) & 0xFFFFFFFF
                nals = _nals(pkt.data)
                for k, nal in enumerate(nals):
                    last = k == len(nals) - 1
                    for payload, end in self._fragments(nal):
                        marker = 0x80 if (last and end) else 0
                        rtp = struct.pack(">BBHII", 0x80, marker | 96, seq & 0xFFFF, ts, ssrc) + payload
                        writer.write(b"$\x00" + struct.pack(">H", len(rtp)) + rtp)
                        seq += 1
                await writer.drain()
                await asyncio.sleep(1 / self.fps)
        finally:
            stop.set()

    @staticmethod
    def _fragments(nal: bytes, mtu: int = 1400):
        if len(nal) <= mtu:
            yield nal, True
            return
        head, data = nal[0], nal[1:]
        indicator = (head & 0xE0) | 28
        for i in range(0, len(data), mtu):
            chunk = data[i:i + mtu]
            start, end = i == 0, i + mtu >= len(data)
            fu = (0x80 if start else 0) | (0x40 if end else 0) | (head & 0x1F)
            yield bytes([indicator, fu]) + chunk, end

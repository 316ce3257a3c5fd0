"""A device's speaker for talk-back: it connects where ``start_talk`` says, plays (here:
keeps) what it hears, and can tell what that was.

The simulated doorbell has no loudspeaker, so it *records*: the decoded 8 kHz samples stay
in memory (the last ``keep_s`` seconds), and each talk can be written to a WAV file
(``record_dir``), so a test or a person can check that the audio arrived —
:meth:`Speaker.dominant_frequency` is the loudest frequency of what was heard (numpy FFT).

Wire format (docs/device-protocol.md, *Talk-back*): a WebSocket to the given ``ws(s)://``
URL; binary messages of G.711 (``pcma`` A-law or ``pcmu`` µ-law), 8 kHz mono, one byte per
sample. Decoded with PyAV, as a real device's DSP would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import websockets

log = logging.getLogger("faoyam.agent.speaker")

RATE = 8000
CODECS = {"pcma": "pcm_alaw", "pcmu": "pcm_mulaw"}


@dataclass
class Talk:
    """One talk the device took part in."""

    url_host: str
    codec: str
    started: float
    ended: float | None = None
    bytes: int = 0
    close_code: int | None = None


class Speaker:
    def __init__(self, *, keep_s: float = 60.0, record_dir: Path | None = None):
        self.keep = int(keep_s * RATE)
        self.record_dir = Path(record_dir) if record_dir else None
        self._chunks: list[np.ndarray] = []
        self._kept = 0
        self.talks: list[Talk] = []
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    # -- what it heard --
    def samples(self) -> np.ndarray:
        """Every kept sample (int16, 8 kHz), oldest first."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)

    def heard_seconds(self) -> float:
        return self._kept / RATE

    def dominant_frequency(self, last_s: float | None = None) -> float:
        """The loudest frequency (Hz) of what was heard (or of its last ``last_s`` seconds)."""
        x = self.samples().astype(np.float64)
        if last_s is not None:
            x = x[-int(last_s * RATE):]
        if x.size < 64:
            return 0.0
        x = (x - x.mean()) * np.hanning(x.size)
        spectrum = np.abs(np.fft.rfft(x))
        return float(np.argmax(spectrum) * RATE / x.size)

    def rms(self) -> float:
        x = self.samples().astype(np.float64)
        return float(np.sqrt(np.mean(x * x))) if x.size else 0.0

    def _hear(self, pcm: np.ndarray) -> None:
        self._chunks.append(pcm)
        self._kept += pcm.size
        while self._kept - self._chunks[0].size >= self.keep and len(self._chunks) > 1:
            self._kept -= self._chunks.pop(0).size

    # -- talking --
    def start(self, url: str, codec: str) -> None:
        """Connect to ``url`` and listen, replacing a talk in progress."""
        self.stop_nowait()
        self._task = asyncio.create_task(self._listen(url, codec), name="talk")

    def stop_nowait(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _listen(self, url: str, codec: str) -> None:
        talk = Talk(url.split("/")[2], codec, time.time())
        self.talks.append(talk)
        decoder = av.CodecContext.create(CODECS[codec], "r")
        decoder.sample_rate, decoder.layout = RATE, "mono"
        wav = self._open_wav(talk)
        try:
            async with websockets.connect(url, max_size=1 << 20, open_timeout=10) as ws:
                self.listening.set()
                try:
                    async for message in ws:
                        if isinstance(message, str) or not message:
                            continue
                        talk.bytes += len(message)
                        pcm = np.concatenate([f.to_ndarray().ravel() for f in decoder.decode(av.Packet(message))])
                        self._hear(pcm)
                        if wav is not None:
                            wav.writeframes(pcm.astype("<i2").tobytes())
                finally:
                    talk.close_code = ws.close_code
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            log.info("talk connection failed: %s", type(exc).__name__)
        finally:
            self.listening.clear()
            talk.ended = time.time()
            if wav is not None:
                wav.close()

    def _open_wav(self, talk: Talk):
        if self.record_dir is None:
            return None
        self.record_dir.mkdir(parents=True, exist_ok=True)
        path = self.record_dir / f"talk-{int(talk.started * 1000)}.wav"
        w = wave.open(str(path), "wb")
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        return w

"""The live fMP4 muxer: samples in, init segment and fragments out — once per stream.

Every consumer of a stream (viewers, and next the recorder and the snapshotter) shares the
bytes this produces; nothing is muxed per viewer. The ingest side calls :meth:`add` for
each sample (already in MP4 sample format: length-prefixed NAL units for video, raw AAC
frames for audio) and :meth:`flush` after each batch of network reads, so one fragment
covers whatever arrived in one read batch. A video keyframe always starts a new fragment,
so a viewer can start at any fragment flagged ``keyframe``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faoyam.media.fmp4 import TrackRun, init_segment, media_fragment
from faoyam.media.timeline import Timeline
from faoyam.media.tracks import Track


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof``+``mdat``: ``keyframe`` means decoding can start here."""

    data: bytes
    keyframe: bool
    samples: int
    sequence: int


class _Pending:
    """Samples of one track waiting for the next fragment (parallel lists, decode order)."""

    __slots__ = ("dts", "cts", "keys", "payloads")

    def __init__(self) -> None:
        self.dts: list[int] = []
        self.cts: list[int] = []
        self.keys: list[bool] = []
        self.payloads: list[bytes] = []


def _default_step(track: Track) -> int:
    """A first guess for a sample's duration, until the stream shows its real pace."""
    if track.kind == "video":
        return track.timescale // 25
    return 1024 if track.codec == "mp4a" else track.timescale // 50


class LiveMuxer:
    """Turns one stream's samples into fMP4; survives reconfiguration and reconnects.

    ``max_jump_seconds``: a timestamp step larger than this (or backwards) is treated as a
    broken clock and repaired, see :mod:`faoyam.media.timeline`.
    """

    def __init__(self, max_jump_seconds: float = 5.0):
        self.tracks: tuple[Track, ...] = ()
        self.init: bytes | None = None
        self._max_jump = max_jump_seconds
        self._pending: list[_Pending] = []
        self._timelines: list[Timeline] = []
        self._video = -1  # index of the video track, -1 for audio-only streams
        self._sequence = 0

    def configure(self, tracks: Sequence[Track]) -> bytes | None:
        """Set the tracks; returns the new init segment, or None if nothing changed.

        Call :meth:`flush` first: samples pending for the old configuration belong before
        the new init segment.
        """
        tracks = tuple(tracks)
        if tracks == self.tracks:
            return None
        old = self._timelines
        self._timelines = []
        for i, track in enumerate(tracks):
            same_clock = i < len(old) and i < len(self.tracks) and self.tracks[i].timescale == track.timescale
            self._timelines.append(old[i] if same_clock else Timeline(
                _default_step(track), int(self._max_jump * track.timescale)))
        self.tracks = tracks
        self._pending = [_Pending() for _ in tracks]
        self._video = next((i for i, t in enumerate(tracks) if t.kind == "video"), -1)
        self.init = init_segment(tracks)
        return self.init

    def timeline(self, index: int) -> Timeline:
        return self._timelines[index]

    def add(self, index: int, dts: int, cts: int, keyframe: bool, payload: bytes) -> Fragment | None:
        """Queue one sample of track ``index``; a video keyframe first flushes what is pending
        (and that fragment is returned)."""
        cut = None
        if keyframe and index == self._video and self._pending[index].payloads:
            cut = self.flush()
        pending = self._pending[index]
        pending.dts.append(self._timelines[index].place(dts))
        pending.cts.append(cts)
        pending.keys.append(keyframe)
        pending.payloads.append(payload)
        return cut

    def flush(self) -> Fragment | None:
        """Everything pending as one fragment, or None if nothing is pending."""
        runs, samples = [], 0
        for i, pending in enumerate(self._pending):
            if not pending.payloads:
                continue
            dts, timeline = pending.dts, self._timelines[i]
            durations = [b - a for a, b in zip(dts, dts[1:])]
            durations.append(timeline.step)
            timeline.close_fragment(dts[-1] + timeline.step)
            runs.append(TrackRun(i + 1, self.tracks[i].kind == "video", dts[0], durations,
                                 pending.cts, pending.keys, pending.payloads))
            samples += len(pending.payloads)
            self._pending[i] = _Pending()
        if not runs:
            return None
        self._sequence += 1
        if self._video < 0:
            keyframe = True
        else:
            video = next((r for r in runs if r.track_id == self._video + 1), None)
            keyframe = bool(video and video.keyframes[0])
        return Fragment(media_fragment(self._sequence, runs), keyframe, samples, self._sequence)

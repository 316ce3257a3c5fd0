"""The media engine: live video from cameras to viewers, without decoding it.

Modules, in the order a frame travels through them:

* :mod:`~faoyam.media.rtmp_server` — one asyncio RTMP server for every camera's push,
  read in batches (:mod:`~faoyam.media.rtmp_chunks` reassembles chunks,
  :mod:`~faoyam.media.amf` decodes commands, :mod:`~faoyam.media.flv` reads tag bodies);
* :mod:`~faoyam.media.tracks` — codec configuration records → tracks
  (:mod:`~faoyam.media.sps` reads the picture size from the SPS);
* :mod:`~faoyam.media.muxer` — samples → fragmented MP4, once per stream
  (:mod:`~faoyam.media.fmp4` writes the boxes, :mod:`~faoyam.media.timeline` keeps time
  monotonic);
* :mod:`~faoyam.media.hub` — one hub per channel stream: current GOP, bounded fan-out;
* :mod:`~faoyam.media.rtmp_publisher` and :mod:`~faoyam.media.testvideo` — the pushing side
  (device agent, simulator, tests, benchmarks).

See ``docs/decisions/media-ingest.md`` for why RTMP and how this is measured.
"""

from faoyam.media.hub import StreamHub, StreamHubs, Subscription
from faoyam.media.ids import ChannelId
from faoyam.media.rtmp_server import RtmpServer

__all__ = ["ChannelId", "RtmpServer", "StreamHub", "StreamHubs", "Subscription"]

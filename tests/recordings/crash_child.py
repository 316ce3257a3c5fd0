"""A media worker stand-in for the crash test: N cameras fed at real-time rate into hubs,
recorded; it prints, every 0.1 s, a JSON line with what each camera has safely spooled, and
runs until it is killed (``kill -9``). Run as ``python -m tests.recordings.crash_child``
with the test's settings and channels in ``FAOYAM_CRASH_CONFIG``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from faoyam import models  # noqa: F401 - every table
from faoyam.core.config import Settings
from faoyam.core.context import Context
from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.recorder import Recorder
from faoyam.media.testfeed import feed_realtime
from faoyam.media.testvideo import cached_clip


async def main() -> None:
    config = json.loads(os.environ["FAOYAM_CRASH_CONFIG"])
    settings = Settings(**config["settings"], _env_file=None)
    ctx = Context.build(settings)
    clip = cached_clip(audio=True, bframes=2, seconds=2.0, gop_seconds=1.0)
    hubs = StreamHubs()
    rec = Recorder(ctx.db, ctx.blobs, hubs, Path(config["spool"]), backend=settings.blob_backend,
                   segment_s=config["segment_s"], flush_s=config["flush_s"])
    channels = [ChannelId(*c) for c in config["channels"]]
    fed = dict.fromkeys(channels, 0)

    def counter(channel):
        def on_frame(_dts, _wall):
            fed[channel] += 1
        return on_frame

    for channel in channels:
        rec.record(channel)
    feeders = [asyncio.create_task(feed_realtime(hubs.hub(c), clip, on_frame=counter(c))) for c in channels]
    while True:
        await asyncio.sleep(0.1)
        line = {str(c): {"fed": fed[c], "spooled": rec.channels[c].frames_spooled,
                         "closed": rec.channels[c].segments_closed, "stored": rec.uploaded} for c in channels}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    await asyncio.gather(*feeders)


if __name__ == "__main__":
    asyncio.run(main())

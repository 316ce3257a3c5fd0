"""Which stream is which, and who may publish it.

A device pushes each of its channels' streams (``main``, and ``sub`` where the camera has a
low-resolution sub-stream) over its own media connection. The devices domain decides which
stream a connection may publish: it implements :data:`Authorize`, typically by checking a
short-lived token it sent the device over MQTT, carried in the RTMP stream key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChannelId:
    """One stream of one channel of one device."""

    device_id: str
    channel: int = 0
    stream: str = "main"

    def __str__(self) -> str:
        return f"{self.device_id}/{self.channel}/{self.stream}"


# authorize(app, stream_key) -> the stream this connection may publish, or None to refuse.
# May be a coroutine function (the devices domain looks tokens up in its database).
Authorize = Callable[[str, str], "ChannelId | None | Awaitable[ChannelId | None]"]

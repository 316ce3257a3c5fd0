"""The RTMP chunk stream: splitting messages into chunks and putting them back together.

RTMP (Adobe's RTMP 1.0 specification, 2012) multiplexes messages — commands, audio and video
— over one TCP connection as *chunks* of at most the sender's chunk size (128 bytes until
the sender announces another one with *Set Chunk Size*). Each chunk starts with a basic
header (format and chunk-stream id) and a message header whose size depends on the format:

======  ==========================================================================
fmt 0   11 bytes: absolute timestamp, message length, type, message stream id
fmt 1    7 bytes: timestamp delta, length, type (same message stream)
fmt 2    3 bytes: timestamp delta only
fmt 3    none: continuation of a message, or a new one repeating the previous header
======  ==========================================================================

A 24-bit timestamp field of ``0xFFFFFF`` means a 32-bit extended timestamp follows (also
in the fmt 3 chunks of that chunk stream). The reader works on one contiguous buffer and
only commits a chunk once all of it has arrived, so a read that ends mid-chunk costs
nothing but a retry on the next read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# message types
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF3, COMMAND_AMF3, DATA_AMF0, COMMAND_AMF0, AGGREGATE = 8, 9, 15, 17, 18, 20, 22

DEFAULT_CHUNK_SIZE = 128
MAX_MESSAGE_SIZE = 16 << 20  # a 4K keyframe is a few MB; anything larger is an attack or garbage


class RtmpProtocolError(ValueError):
    """The peer broke the chunk-stream rules; the connection must be closed."""


@dataclass(slots=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds
    payload: bytes


class _ChunkStream:
    __slots__ = ("timestamp", "ts_field", "extended", "length", "type_id", "stream_id", "parts", "remaining")

    def __init__(self) -> None:
        self.timestamp = 0
        self.ts_field = 0
        self.extended = False
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.parts: list[bytes] = []
        self.remaining = 0  # bytes still missing from the message in progress


class ChunkReader:
    """Reassembles messages from a peer's chunk stream."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE):
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self._streams: dict[int, _ChunkStream] = {}

    def abort(self, csid: int) -> None:
        """The peer's *Abort* message: drop the partial message of chunk stream ``csid``."""
        stream = self._streams.get(csid)
        if stream is not None:
            stream.parts, stream.remaining = [], 0

    def parse(self, data: bytearray, pos: int, out: list[Message]) -> int:
        """Append the complete messages found in ``data[pos:]`` to ``out``; returns where the
        first incomplete chunk starts.

        *Set Chunk Size* and *Abort* take effect here, at once, because they change how the
        very next chunk is read; they are passed on in ``out`` as well."""
        view = memoryview(data)  # slices of a view copy once; released before returning
        try:
            return self._parse(data, view, pos, out)
        finally:
            view.release()

    def _parse(self, data: bytearray, view: memoryview, pos: int, out: list[Message]) -> int:
        end = len(data)
        streams = self._streams
        while pos < end:
            start = pos
            b0 = data[pos]
            fmt, csid = b0 >> 6, b0 & 0x3F
            pos += 1
            if csid == 0:
                if pos >= end:
                    return start
                csid, pos = 64 + data[pos], pos + 1
            elif csid == 1:
                if pos + 1 >= end:
                    return start
                csid, pos = 64 + data[pos] + (data[pos + 1] << 8), pos + 2
            cs = streams.get(csid)
            if cs is None:
                if fmt != 0:
                    raise RtmpProtocolError(f"chunk stream {csid} starts without a full header")
                cs = streams[csid] = _ChunkStream()
            new_message = cs.remaining == 0
            timestamp, ts_field, extended = cs.timestamp, cs.ts_field, cs.extended
            length, type_id, stream_id = cs.length, cs.type_id, cs.stream_id
            if fmt == 0:
                if pos + 11 > end:
                    return start
                ts_field = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
                length = (data[pos + 3] << 16) | (data[pos + 4] << 8) | data[pos + 5]
                type_id = data[pos + 6]
                stream_id = int.from_bytes(data[pos + 7:pos + 11], "little")
                pos += 11
            elif fmt == 1:
                if pos + 7 > end:
                    return start
                ts_field = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
                length = (data[pos + 3] << 16) | (data[pos + 4] << 8) | data[pos + 5]
                type_id = data[pos + 6]
                pos += 7
            elif fmt == 2:
                if pos + 3 > end:
                    return start
                ts_field = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
                pos += 3
            if fmt != 3:
                extended = ts_field == 0xFFFFFF
            if extended:
                if pos + 4 > end:
                    return start
                ext = int.from_bytes(data[pos:pos + 4], "big")
                pos += 4
                if fmt != 3:
                    ts_field = ext
            if new_message:
                if length > self.max_message_size:
                    raise RtmpProtocolError(f"message of {length} bytes is over the limit")
                # fmt 0 carries an absolute time, the others a delta (fmt 3 repeats the last delta)
                timestamp = ts_field if fmt == 0 else (timestamp + ts_field) & 0xFFFFFFFF
                remaining = length
            elif fmt != 3:
                raise RtmpProtocolError(f"chunk stream {csid}: new header in the middle of a message")
            else:
                remaining = cs.remaining
            take = remaining if remaining < self.chunk_size else self.chunk_size
            if pos + take > end:
                return start
            # the whole chunk is here: commit the header state
            cs.timestamp, cs.ts_field, cs.extended = timestamp, ts_field, extended
            cs.length, cs.type_id, cs.stream_id = length, type_id, stream_id
            if take == length:  # the common case with a large chunk size: one chunk, one message
                out.append(Message(type_id, stream_id, timestamp, bytes(view[pos:pos + take])))
                cs.remaining = 0
            else:
                cs.parts.append(bytes(view[pos:pos + take]))
                cs.remaining = remaining - take
                if cs.remaining == 0:
                    out.append(Message(type_id, stream_id, timestamp, b"".join(cs.parts)))
                    cs.parts = []
            pos += take
            if (type_id == SET_CHUNK_SIZE or type_id == ABORT) and cs.remaining == 0:
                self._control(out[-1])
        return pos

    def _control(self, message: Message) -> None:
        if len(message.payload) < 4:
            raise RtmpProtocolError("truncated protocol control message")
        value = int.from_bytes(message.payload[:4], "big") & 0x7FFFFFFF
        if message.type_id == SET_CHUNK_SIZE:
            if value < 1:
                raise RtmpProtocolError("chunk size 0")
            self.chunk_size = min(value, self.max_message_size)
        else:
            self.abort(value)


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    return bytes(((fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))


def encode_message(csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes,
                   chunk_size: int) -> bytes:
    """``payload`` as one fmt 0 chunk followed by fmt 3 continuation chunks."""
    timestamp &= 0xFFFFFFFF
    extended = timestamp >= 0xFFFFFF
    header = _basic_header(0, csid) + struct.pack(
        ">I", min(timestamp, 0xFFFFFF))[1:] + struct.pack(">I", len(payload))[1:] + bytes((type_id,)) + struct.pack(
        "<I", stream_id)
    ext = struct.pack(">I", timestamp) if extended else b""
    if len(payload) <= chunk_size:
        return header + ext + payload
    continuation = _basic_header(3, csid) + ext
    parts = [header, ext, payload[:chunk_size]]
    for offset in range(chunk_size, len(payload), chunk_size):
        parts += (continuation, payload[offset:offset + chunk_size])
    return b"".join(parts)


def control_message(type_id: int, payload: bytes) -> bytes:
    """A protocol control message (chunk stream 2, message stream 0)."""
    return encode_message(2, type_id, 0, 0, payload, DEFAULT_CHUNK_SIZE)

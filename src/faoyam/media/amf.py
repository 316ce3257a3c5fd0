"""AMF0, the value encoding of RTMP commands (``connect``, ``publish``…) and of ``onMetaData``.

Only what RTMP publishing needs: numbers, booleans, strings, objects, ECMA arrays, strict
arrays, null and undefined. AMF3 is not decoded: clients that announce AMF3 commands
(message type 17) still put AMF0 values after a leading zero byte, which the caller strips.

Decoding never trusts a length: a truncated or malformed value raises :class:`AmfError`,
which the RTMP session turns into a clean disconnect with a log line.
"""

from __future__ import annotations

import struct
from typing import Any

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING = 0x08, 0x09, 0x0A, 0x0B, 0x0C

_MAX_DEPTH = 16  # a hostile peer could nest objects until the stack overflows


class AmfError(ValueError):
    """The bytes are not a well-formed AMF0 value."""


def decode_all(data: bytes | memoryview) -> list[Any]:
    """Every AMF0 value in ``data``, in order (a command is a sequence of values)."""
    values, pos = [], 0
    view = memoryview(data)
    while pos < len(view):
        value, pos = _decode(view, pos, 0)
        values.append(value)
    return values


def _need(view: memoryview, pos: int, size: int) -> None:
    if pos + size > len(view):
        raise AmfError(f"truncated AMF0 value at byte {pos}")


def _string(view: memoryview, pos: int, size_bytes: int) -> tuple[str, int]:
    _need(view, pos, size_bytes)
    size = int.from_bytes(view[pos:pos + size_bytes], "big")
    pos += size_bytes
    _need(view, pos, size)
    return bytes(view[pos:pos + size]).decode("utf-8", "replace"), pos + size


def _properties(view: memoryview, pos: int, depth: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while True:
        key, pos = _string(view, pos, 2)
        _need(view, pos, 1)
        if key == "" and view[pos] == OBJECT_END:
            return result, pos + 1
        result[key], pos = _decode(view, pos, depth + 1)


def _decode(view: memoryview, pos: int, depth: int) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise AmfError("AMF0 value nested too deeply")
    _need(view, pos, 1)
    marker, pos = view[pos], pos + 1
    if marker == NUMBER:
        _need(view, pos, 8)
        return struct.unpack_from(">d", view, pos)[0], pos + 8
    if marker == BOOLEAN:
        _need(view, pos, 1)
        return bool(view[pos]), pos + 1
    if marker == STRING:
        return _string(view, pos, 2)
    if marker == LONG_STRING:
        return _string(view, pos, 4)
    if marker == OBJECT:
        return _properties(view, pos, depth)
    if marker == ECMA_ARRAY:
        _need(view, pos, 4)  # the count is advisory; the end marker is what counts
        return _properties(view, pos + 4, depth)
    if marker == STRICT_ARRAY:
        _need(view, pos, 4)
        count, pos = int.from_bytes(view[pos:pos + 4], "big"), pos + 4
        if count > len(view) - pos:  # every element takes at least one byte
            raise AmfError("AMF0 strict array longer than its message")
        items = []
        for _ in range(count):
            item, pos = _decode(view, pos, depth + 1)
            items.append(item)
        return items, pos
    if marker == DATE:
        _need(view, pos, 10)
        return struct.unpack_from(">d", view, pos)[0], pos + 10
    if marker in (NULL, UNDEFINED):
        return None, pos
    raise AmfError(f"unsupported AMF0 marker 0x{marker:02x}")


def encode(*values: Any) -> bytes:
    """AMF0 bytes for ``values`` (dicts become anonymous objects)."""
    out = bytearray()
    for value in values:
        _encode(out, value)
    return bytes(out)


def _encode_key(out: bytearray, key: str) -> None:
    raw = key.encode()
    out += len(raw).to_bytes(2, "big") + raw


def _encode(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(NULL)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, int(value)))
    elif isinstance(value, (int, float)):
        out.append(NUMBER)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            out.append(LONG_STRING)
            out += len(raw).to_bytes(4, "big") + raw
        else:
            out.append(STRING)
            out += len(raw).to_bytes(2, "big") + raw
    elif isinstance(value, dict):
        out.append(OBJECT)
        for key, item in value.items():
            _encode_key(out, key)
            _encode(out, item)
        out += b"\x00\x00" + bytes((OBJECT_END,))
    elif isinstance(value, (list, tuple)):
        out.append(STRICT_ARRAY)
        out += len(value).to_bytes(4, "big")
        for item in value:
            _encode(out, item)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")

"""Record framing inside a log segment file (no I/O, no asyncio).

Each record is framed as::

    magic   u8   0xF7
    length  u32  payload length, big-endian
    crc     u32  CRC-32 of (offset as u64 big-endian) + payload
    offset  u64  the record's log offset
    payload      ``length`` bytes (an encoded record, see ``events``)

The checksum covers the offset so a record copied to the wrong place is
caught too. "Incomplete" (the buffer ends inside a frame) and "corrupt" (a
complete-looking frame that fails its checks) are different outcomes, as in
any good framing layer: the first means read more, the second means stop.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = 0xF7
HEADER = struct.Struct(">BIIQ")
HEADER_SIZE = HEADER.size
_OFFSET = struct.Struct(">Q")
#: A record bigger than this is corrupt, not merely large (bulk values are
#: capped at 512 MiB by proto-max-bulk-len; a record holds a few of them).
MAX_RECORD_BYTES = 2**31


def frame(offset: int, payload: bytes) -> bytes:
    """Frame one payload for writing at ``offset``."""
    off = _OFFSET.pack(offset)
    crc = zlib.crc32(payload, zlib.crc32(off))
    return HEADER.pack(MAGIC, len(payload), crc, offset) + payload


class Incomplete(Exception):
    """The buffer ends inside a frame."""


class Corrupt(Exception):
    """The bytes at this position are not a valid frame."""


def parse(buf: bytes | memoryview, pos: int, expected_offset: int | None = None) -> tuple[int, bytes, int]:
    """Parse the frame at ``pos``: return ``(offset, payload, next_pos)``.

    Raises ``Incomplete`` if ``buf`` ends before the frame does and
    ``Corrupt`` if the frame fails its magic, length, checksum or (when given)
    expected-offset check.
    """
    if len(buf) - pos < HEADER_SIZE:
        if len(buf) > pos and buf[pos] != MAGIC:
            raise Corrupt("bad magic byte")
        raise Incomplete
    magic, length, crc, offset = HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        raise Corrupt("bad magic byte")
    if length > MAX_RECORD_BYTES:
        raise Corrupt(f"impossible length {length}")
    end = pos + HEADER_SIZE + length
    if end > len(buf):
        raise Incomplete
    payload = bytes(buf[pos + HEADER_SIZE : end])
    if zlib.crc32(payload, zlib.crc32(_OFFSET.pack(offset))) != crc:
        raise Corrupt("checksum mismatch")
    if expected_offset is not None and offset != expected_offset:
        raise Corrupt(f"offset {offset} where {expected_offset} was expected")
    return offset, payload, end


def find_next_valid(buf: bytes | memoryview, pos: int, min_offset: int) -> int | None:
    """Return the position of the first valid frame after ``pos`` whose offset
    is at least ``min_offset``, or None. Used to tell a torn tail (nothing
    valid follows) from corruption in the middle (valid records follow)."""
    data = bytes(buf)
    i = data.find(bytes([MAGIC]), pos + 1)
    while i != -1:
        try:
            offset, _, _ = parse(data, i)
            if offset >= min_offset:
                return i
        except (Incomplete, Corrupt):
            pass
        i = data.find(bytes([MAGIC]), i + 1)
    return None

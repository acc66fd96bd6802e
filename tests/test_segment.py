"""Record framing: exact bytes, and "incomplete" kept apart from "corrupt"."""

from __future__ import annotations

import struct
import zlib

import pytest

from streams import segment
from streams.segment import Corrupt, Incomplete, find_next_valid, frame, parse


def test_frame_exact_bytes():
    assert frame(5, b"hi") == bytes.fromhex(
        "f7"  # magic
        "00000002"  # payload length
        "7c0b92ce"  # crc32(offset u64 BE + payload)
        "0000000000000005"  # offset
        "6869"  # payload
    )
    assert frame(0, b"") == bytes.fromhex("f7" "00000000" "6522df69" "0000000000000000")


def test_checksum_covers_offset_and_payload():
    f = frame(2**40 + 3, b"payload")
    magic, length, crc, offset = struct.unpack_from(">BIIQ", f)
    assert (magic, length, offset) == (0xF7, 7, 2**40 + 3)
    assert crc == zlib.crc32(struct.pack(">Q", 2**40 + 3) + b"payload")
    assert segment.HEADER_SIZE == 17


def test_parse_a_run_of_frames():
    buf = frame(10, b"a") + frame(11, b"") + frame(12, b"ccc" * 100)
    pos, got = 0, []
    while pos < len(buf):
        offset, payload, pos = parse(buf, pos, 10 + len(got))
        got.append((offset, payload))
    assert got == [(10, b"a"), (11, b""), (12, b"ccc" * 100)]
    assert pos == len(buf)


def test_parse_accepts_memoryview_and_returns_bytes():
    offset, payload, nxt = parse(memoryview(b"xx" + frame(1, b"ab")), 2)
    assert (offset, payload, nxt) == (1, b"ab", 2 + 17 + 2)
    assert type(payload) is bytes


def test_empty_buffer_and_end_of_buffer_are_incomplete():
    with pytest.raises(Incomplete):
        parse(b"", 0)
    f = frame(0, b"x")
    with pytest.raises(Incomplete):
        parse(f, len(f))


@pytest.mark.parametrize("cut", [1, 5, 16])
def test_truncated_header_is_incomplete(cut):
    with pytest.raises(Incomplete):
        parse(frame(3, b"hello")[:cut], 0)


@pytest.mark.parametrize("cut", [17, 18, 21])
def test_truncated_payload_is_incomplete(cut):
    f = frame(3, b"hello")
    assert len(f) == 22
    with pytest.raises(Incomplete):
        parse(f[:cut], 0)


@pytest.mark.parametrize("bit", range(8))
def test_flipped_payload_bit_is_corrupt(bit):
    f = bytearray(frame(3, b"hello world"))
    f[20] ^= 1 << bit
    with pytest.raises(Corrupt, match="checksum mismatch"):
        parse(bytes(f), 0)


def test_flipped_crc_or_offset_is_corrupt():
    for i in range(5, 17):  # crc and offset fields
        f = bytearray(frame(3, b"hello"))
        f[i] ^= 0x10
        with pytest.raises(Corrupt):
            parse(bytes(f), 0)


def test_wrong_offset_is_corrupt():
    f = frame(8, b"hello")
    assert parse(f, 0, 8)[0] == 8
    with pytest.raises(Corrupt, match="offset 8 where 7 was expected"):
        parse(f, 0, 7)


def test_bad_magic_is_corrupt_even_in_a_short_buffer():
    f = b"\x00" + frame(3, b"hello")[1:]
    with pytest.raises(Corrupt, match="bad magic"):
        parse(f, 0)
    with pytest.raises(Corrupt, match="bad magic"):
        parse(b"\x00\x00", 0)  # zero-filled tail after a crash
    with pytest.raises(Incomplete):
        parse(b"\xf7\x00", 0)  # right magic, just short


def test_impossible_length_is_corrupt():
    f = struct.pack(">BIIQ", 0xF7, 2**31 + 1, 0, 0)
    with pytest.raises(Corrupt, match="impossible length"):
        parse(f, 0)


def test_find_next_valid_skips_garbage_and_older_offsets():
    good = [frame(i, b"record %d" % i) for i in range(5)]
    damaged = bytearray(good[2])
    damaged[-1] ^= 0xFF
    buf = good[0] + good[1] + bytes(damaged) + good[3] + good[4]
    bad_pos = len(good[0]) + len(good[1])
    with pytest.raises(Corrupt):
        parse(buf, bad_pos, 2)
    assert find_next_valid(buf, bad_pos, 2) == bad_pos + len(good[2])
    # a valid frame with a lower offset than wanted does not count
    assert find_next_valid(buf, 0, 4) == len(buf) - len(good[4])
    assert find_next_valid(buf, 0, 5) is None


def test_find_next_valid_none_for_a_torn_tail():
    buf = frame(0, b"a") + frame(1, b"bbbb")[:-2]
    assert find_next_valid(buf, len(frame(0, b"a")), 1) is None
    assert find_next_valid(buf + b"\x00" * 100, len(frame(0, b"a")), 1) is None


def test_find_next_valid_ignores_magic_bytes_inside_headers():
    # offset 0xF7F7... puts magic bytes inside the header; no false frame
    buf = b"\x00" * 3 + frame(0xF7F7, b"x") + frame(0xF7F8, b"y")
    assert find_next_valid(buf, 0, 0) == 3
    assert find_next_valid(buf, 3, 0) == 3 + len(frame(0xF7F7, b"x"))

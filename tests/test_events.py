"""The event codec: every byte string round-trips exactly, the wire form is
stable, and payloads that are not Fjord records are rejected clearly."""

from __future__ import annotations

import base64
import random

import orjson
import pytest

from streams.events import SCHEMA_VERSION, Event, EventDecodeError, Record, decode_record, encode_record


def roundtrip(key, data) -> Event:
    payload = encode_record(123, [Event("set", 0, key, data)])
    record = decode_record(7, payload)
    assert record.offset == 7 and record.time_ms == 123 and len(record.events) == 1
    return record.events[0]


def tricky_byte_strings() -> list[bytes]:
    """Hand-picked edge cases plus seeded random strings over all 256 byte
    values (hypothesis is not available; the seed keeps failures replayable)."""
    cases = [
        b"",
        bytes(range(256)),
        bytes(range(255, -1, -1)),
        b"\x00",
        b"\xff",
        b"\x80",  # lone continuation byte
        b"\xc3",  # truncated 2-byte sequence
        b"\xc0\xaf",  # overlong encoding of '/'
        b"\xed\xa0\x80",  # UTF-8-encoded surrogate: invalid
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\xf7",  # the segment magic byte
        "h\u00e9llo w\u00f6rld".encode(),  # valid non-ASCII UTF-8
        "\u65e5\u672c\u8a9e".encode(),
        "\U0001f600 emoji".encode(),
        "\u2028\u2029".encode(),  # JSON-hostile line separators
        b'"quoted" \\ back\\slash \n\r\t',
        b"\x01\x02\x1f\x7f control",
        b'{"b64": "AAAA"}',  # looks like the marker, but is a byte string
        b'{"b64":"aGVsbG8="}',
        b"b64",
        base64.b64encode(b"\xff\xfe"),
    ]
    rng = random.Random(20251127)
    for _ in range(400):
        n = rng.choice([1, 2, 3, 7, 16, 100, 1000])
        cases.append(bytes(rng.randrange(256) for _ in range(n)))
    # random *valid* UTF-8 made from random code points (no surrogates)
    for _ in range(100):
        cps = [rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0x80, 0xD800),
                           rng.randrange(0xE000, 0x110000)]) for _ in range(rng.randrange(1, 20))]
        cases.append("".join(map(chr, cps)).encode("utf-8"))
    return cases


CASES = tricky_byte_strings()


def test_every_byte_string_round_trips_as_key_and_value():
    for raw in CASES:
        ev = roundtrip(raw, {"value": raw})
        assert ev.key == raw, raw
        assert type(ev.key) is bytes
        assert ev.data["value"] == raw, raw


def test_byte_strings_round_trip_inside_nested_lists():
    rng = random.Random(7)
    for _ in range(50):
        pairs = [[rng.choice(CASES), rng.choice(CASES)] for _ in range(rng.randrange(0, 6))]
        ev = roundtrip(b"h", {"fields": pairs, "members": [p[0] for p in pairs]})
        assert ev.data["fields"] == pairs
        assert ev.data["members"] == [p[0] for p in pairs]


def test_bytearray_and_memoryview_encode_like_bytes():
    ev = roundtrip(bytearray(b"\xff\x00k"), {"value": memoryview(b"v\x80")})
    assert ev.key == b"\xff\x00k" and ev.data["value"] == b"v\x80"


def test_utf8_is_written_as_text_and_the_rest_as_b64():
    doc = orjson.loads(encode_record(0, [Event("set", 0, "\u00e9t\u00e9".encode(), {"value": b"\xff\x00"})]))
    ev = doc["events"][0]
    assert ev["key"] == "\u00e9t\u00e9"
    assert ev["data"]["value"] == {"b64": base64.b64encode(b"\xff\x00").decode()}


def test_marker_lookalike_strings_stay_strings():
    payload = encode_record(0, [Event("set", 0, b'{"b64": "AAAA"}', {"value": b'{"b64":"aGVsbG8="}'})])
    assert b'"key":"{\\"b64\\": \\"AAAA\\"}"' in payload
    ev = decode_record(0, payload).events[0]
    assert ev.key == b'{"b64": "AAAA"}' and ev.data["value"] == b'{"b64":"aGVsbG8="}'


def test_numbers_none_and_keyless_events():
    ev = roundtrip(None, {"expire_at": 1764255600123, "count": -5, "score": 1.5, "flag": True, "x": None})
    assert ev.key is None
    assert ev.data == {"expire_at": 1764255600123, "count": -5, "score": 1.5, "flag": True, "x": None}
    assert type(ev.data["expire_at"]) is int and type(ev.data["score"]) is float


def test_exact_wire_bytes_of_a_record():
    payload = encode_record(
        1764255600123,
        [
            Event("set", 0, b"user:1", {"value": b"alice", "expire_at": None}),
            Event("del", 3, b"\xff", {}),
            Event("flushall", None, None, {}),
        ],
    )
    assert payload == (
        b'{"v":1,"time":1764255600123,"events":['
        b'{"type":"set","db":0,"key":"user:1","data":{"value":"alice","expire_at":null}},'
        b'{"type":"del","db":3,"key":{"b64":"/w=="},"data":{}},'
        b'{"type":"flushall","db":null,"key":null,"data":{}}]}'
    )
    assert decode_record(42, payload) == Record(
        42,
        1764255600123,
        [
            Event("set", 0, b"user:1", {"value": b"alice", "expire_at": None}),
            Event("del", 3, b"\xff", {}),
            Event("flushall", None, None, {}),
        ],
    )


def test_empty_record_round_trips():
    assert decode_record(0, encode_record(5, [])) == Record(0, 5, [])


def test_unencodable_values_are_refused_at_encode_time():
    with pytest.raises(TypeError):
        encode_record(0, [Event("set", 0, b"k", {"value": object()})])


@pytest.mark.parametrize("version", [0, 2, SCHEMA_VERSION + 1, "1", None])
def test_unknown_schema_version_is_rejected(version):
    payload = orjson.dumps({"v": version, "time": 0, "events": []})
    with pytest.raises(EventDecodeError, match=r"offset 9 has unknown schema version"):
        decode_record(9, payload)


def test_missing_schema_version_is_rejected():
    with pytest.raises(EventDecodeError, match="unknown schema version None"):
        decode_record(1, b'{"time":0,"events":[]}')


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1,2]",
        b'{"v":1}',  # no events
        b'{"v":1,"events":[{"db":0}]}',  # event without a type
        b'{"v":1,"events":[{"type":"set","key":{"b64":"!!!"}}]}',  # bad base64
        b'{"v":1,"events":[{"type":"set","key":{"b64":5}}]}',
        b'{"v":1,"events":"nope"}',
    ],
)
def test_malformed_payloads_raise_event_decode_error(payload):
    with pytest.raises(EventDecodeError, match="offset 3"):
        decode_record(3, payload)


def _reference_encoding(time_ms, events, origin=None, epoch=None) -> bytes:
    """The wire form spelled out independently of ``encode_record``'s fast
    paths: every byte string converted by hand, then one plain dump."""

    def conv(v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(raw).decode("ascii")}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    doc = {"v": SCHEMA_VERSION, "time": time_ms,
           "events": [{"type": e.type, "db": e.db, "key": conv(e.key), "data": conv(e.data)} for e in events]}
    if origin is not None:
        doc["origin"] = origin
    if epoch is not None:
        doc["epoch"] = epoch
    return orjson.dumps(doc)


def test_fast_and_fallback_encodings_write_the_same_bytes():
    """``encode_record`` takes a fast path for UTF-8-only records and falls
    back for the rest (b64, bytearray, memoryview): both must write exactly
    the bytes of the documented wire form, alone or mixed in one record."""
    strings = tricky_byte_strings()
    for i, s in enumerate(strings):
        other = strings[(i * 7 + 3) % len(strings)]
        shapes = [
            [Event("set", 0, s, {"value": other, "expire_at": None})],
            [Event("hset", 2, b"h", {"fields": [[s, other], [b"f", bytearray(s)]]})],
            [Event("set", 0, b"plain", {"value": b"v", "expire_at": 5}),
             Event("rename_from", 1, memoryview(s), {"to": other}), Event("flushall", None, None, {})],
        ]
        for events in shapes:
            for origin, epoch in ((None, None), ("trigger:t", 3)):
                assert encode_record(99, events, origin, epoch) == _reference_encoding(99, events, origin, epoch)
    single = encode_record(1, [Event("set", 0, b"user:1", {"value": "é".encode(), "expire_at": None})])
    assert single == ('{"v":1,"time":1,"events":[{"type":"set","db":0,"key":"user:1",'
                      '"data":{"value":"é","expire_at":null}}]}').encode()

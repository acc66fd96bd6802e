"""Effect events and their wire encoding.

An *event* is one effect on one key (``set``, ``del``, ``expired``, ...), named
after Redis keyspace notifications. A *record* is the unit the log stores: one
offset, the writer's time, and the events of one atomic step (one command, or
one MULTI/EXEC). Replay applies a record whole or not at all, because the log
checksums records, not events.

The encoding is JSON (orjson) so programs without Fjord's code can consume
the log. Keys and values are arbitrary bytes in Redis; inside ``key`` and
``data`` every byte string is written as a JSON string when it is valid UTF-8
and as ``{"b64": "..."}`` otherwise, so every byte string round-trips exactly.
Numbers in ``data`` stay JSON numbers; floats must be finite (orjson writes
NaN and infinities as ``null``), so a score like ``+inf`` travels as bytes.
Structured data uses lists (e.g. hash fields as ``[[field, value], ...]``),
never dicts keyed by byte strings, and a nested dict whose only key is
``"b64"`` always means base64-encoded bytes. Decoding gives back *every*
string inside ``data`` as ``bytes`` (decoded data holds no ``str``), so
appliers compare with byte literals (``b"before"``) and flags travel as bytes
or numbers.

Wire form of a record (the offset lives in the log's framing, like a Kafka
offset, not in the payload)::

    {"v": 1, "time": 1764255600123,
     "events": [{"type": "set", "db": 0, "key": "user:1",
                 "data": {"value": "alice", "expire_at": null}}]}
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

import orjson

SCHEMA_VERSION = 1


class Event(NamedTuple):
    """One effect on one key; ``key`` is None for keyless events (flushall)."""

    type: str
    db: int | None
    key: bytes | None
    data: dict


class Record(NamedTuple):
    """One atomic unit on the log, as read back."""

    offset: int
    time_ms: int
    events: list[Event]


class EventDecodeError(ValueError):
    """A payload that is not a Fjord record of a schema version we know."""


def _encode_bytes(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(raw).decode("ascii")}
    raise TypeError(f"cannot encode {type(obj).__name__} in an event")


def encode_record(time_ms: int, events: list[Event] | tuple[Event, ...]) -> bytes:
    """Encode the events of one atomic step as a record payload."""
    return orjson.dumps(
        {
            "v": SCHEMA_VERSION,
            "time": time_ms,
            "events": [
                {"type": e.type, "db": e.db, "key": e.key, "data": e.data} for e in events
            ],
        },
        default=_encode_bytes,
    )


def _decode_value(v: Any) -> Any:
    if type(v) is str:
        return v.encode("utf-8")
    if type(v) is list:
        return [_decode_value(x) for x in v]
    if type(v) is dict:
        if len(v) == 1 and "b64" in v:
            return base64.b64decode(v["b64"], validate=True)
        return {k: _decode_value(x) for k, x in v.items()}
    return v


def decode_record(offset: int, payload: bytes) -> Record:
    """Decode a record payload read at ``offset``.

    Anything that is not a well-formed record of a known schema version
    raises ``EventDecodeError`` (never a bare ``KeyError`` or ``binascii``
    error), so a reader can tell "bad record" from a bug of its own.
    """
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"record at offset {offset} is not JSON: {exc}") from exc
    version = doc.get("v") if type(doc) is dict else None
    if version != SCHEMA_VERSION:
        raise EventDecodeError(f"record at offset {offset} has unknown schema version {version!r}")
    try:
        events = []
        for e in doc["events"]:
            key = e.get("key")
            if type(key) is str:
                key = key.encode("utf-8")
            elif key is not None:
                key = _decode_value(key)
            data = e.get("data")
            if data:
                # The dict is ours (fresh from orjson): convert in place, and
                # only the values that need it (replay spends its time here).
                for k, v in data.items():
                    t = type(v)
                    if t is str:
                        data[k] = v.encode("utf-8")
                    elif t is list or t is dict:
                        data[k] = _decode_value(v)
            else:
                data = {}
            events.append(Event(e["type"], e.get("db"), key, data))
        return Record(offset, doc.get("time", 0), events)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # binascii.Error (bad base64) is a ValueError
        raise EventDecodeError(f"record at offset {offset} is malformed: {exc!r}") from exc

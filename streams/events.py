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

plus ``"origin": "trigger:audit"`` when the writing connection set one with
``FJORD.ORIGIN`` (absent otherwise), and ``"epoch": 3`` when the writer
claimed an epoch (store/fencing.py; absent otherwise).
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
    #: who wrote it, when the writer said (``FJORD.ORIGIN``): triggers skip
    #: records of their own origin, so a function writing back cannot loop
    origin: str | None = None
    #: the writer's epoch (store/fencing.py); None on records of a writer
    #: that never claimed one, which count as epoch 0
    epoch: int | None = None


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


_dumps = orjson.dumps
#: strict UTF-8; raises on anything else (see ``encode_record``)
_decode_utf8 = bytes.decode


def encode_record(time_ms: int, events: list[Event] | tuple[Event, ...], origin: str | None = None,
                  epoch: int | None = None) -> bytes:
    """Encode the events of one atomic step as a record payload; ``origin``
    (written only when set) tags who wrote it (see ``Record.origin``)."""
    # The write path's hot spot, so: no comprehension (a function call in
    # 3.11), and ``bytes.decode`` as orjson's ``default`` (a C call, no
    # Python frame per byte string). Anything it cannot take (bytes that
    # are not UTF-8, bytearray, memoryview) makes orjson raise, and the
    # record is encoded again by ``_encode_bytes``: the same bytes either way.
    if len(events) == 1:
        e = events[0]
        evs = [{"type": e[0], "db": e[1], "key": e[2], "data": e[3]}]
    else:
        evs = []
        for e in events:
            evs.append({"type": e[0], "db": e[1], "key": e[2], "data": e[3]})
    doc = {"v": SCHEMA_VERSION, "time": time_ms, "events": evs}
    if origin is not None:
        doc["origin"] = origin
    if epoch is not None:
        doc["epoch"] = epoch
    try:
        return _dumps(doc, default=_decode_utf8)
    except orjson.JSONEncodeError:
        return _dumps(doc, default=_encode_bytes)


def _decode_value(v: Any) -> Any:
    """One JSON value of ``data`` with every string back to bytes. The
    containers are fresh from orjson, so they are ours: converted in place,
    which allocates nothing but the byte strings."""
    t = type(v)
    if t is str:
        return v.encode()
    if t is list:
        return _decode_list(v)
    if t is dict:
        if len(v) == 1 and "b64" in v:
            return base64.b64decode(v["b64"], validate=True)
        for k, x in v.items():
            tx = type(x)
            if tx is str:
                v[k] = x.encode()
            elif tx is list or tx is dict:
                v[k] = _decode_value(x)
    return v


def _decode_list(v: list) -> list:
    """A list, in place. Every log consumer pays for this on every event, so
    the common shapes (strings, pairs like ``[field, value]``) are done
    inline rather than with a call per element."""
    for i, x in enumerate(v):
        t = type(x)
        if t is str:
            v[i] = x.encode()
        elif t is list:
            for j, y in enumerate(x):
                ty = type(y)
                if ty is str:
                    x[j] = y.encode()
                elif ty is list or ty is dict:
                    x[j] = _decode_value(y)
        elif t is dict:
            v[i] = _decode_value(x)
    return v


_new_tuple = tuple.__new__  # builds an Event without NamedTuple.__new__'s Python frame


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
                key = key.encode()
            elif key is not None:
                key = _decode_value(key)
            data = e.get("data")
            if data:
                # The dict is ours (fresh from orjson): convert in place, and
                # only the values that need it (replay spends its time here).
                for k, v in data.items():
                    t = type(v)
                    if t is str:
                        data[k] = v.encode()
                    elif t is list:
                        data[k] = _decode_list(v)
                    elif t is dict:
                        data[k] = _decode_value(v)
            else:
                data = {}
            events.append(_new_tuple(Event, (e["type"], e.get("db"), key, data)))
        origin = doc.get("origin")
        epoch = doc.get("epoch")
        return _new_tuple(Record, (offset, doc.get("time", 0), events, origin if type(origin) is str else None,
                                   epoch if type(epoch) is int else None))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # binascii.Error (bad base64) is a ValueError
        raise EventDecodeError(f"record at offset {offset} is malformed: {exc!r}") from exc

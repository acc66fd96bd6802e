"""Images: a key's value as JSON-ready data, for ``NEW_IMAGE``/``OLD_IMAGE``.

``image_of(value)`` gives ``{"type": ..., "value": ...}`` or None (no key).
Byte strings follow the event codec's rule (UTF-8 text as a JSON string,
anything else as ``{"b64": "..."}``), and structures are lists, never
objects keyed by byte strings:

- string: the value
- list: the elements, head first
- hash: ``[[field, value], ...]`` in the hash's order
- set: the members, sorted (bytewise), so an image is deterministic
- zset: ``[[member, score], ...]`` in rank order; a score is a JSON number,
  or the string ``"inf"``/``"-inf"``
- stream: ``[[id, [field, value, ...]], ...]``

A data type module added later registers its own imager in ``IMAGERS``
(by the name TYPE reports); ``image_of`` also understands a stream value
that exposes its entries as ``(id, fields)`` pairs.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Callable

from store.keyspace import type_name

#: TYPE name -> function making the JSON-ready ``value`` of an image
IMAGERS: dict[str, Callable[[object], Any]] = {}


def json_bytes(raw: bytes) -> Any:
    """One byte string by the event codec's rule."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode("ascii")}


def to_json(obj: Any) -> Any:
    """Decoded event data (bytes inside dicts and lists) -> JSON-ready data."""
    t = type(obj)
    if t is bytes:
        try:
            return obj.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(obj).decode("ascii")}
    if t is dict:
        return {k if type(k) is str else to_json(k): to_json(v) for k, v in obj.items()}
    if t is list or t is tuple:
        return _list_to_json(obj)
    if t is bytearray or t is memoryview:
        return json_bytes(bytes(obj))
    if t is float and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj


def _list_to_json(items) -> list:
    """A list (every trigger delivery converts its event's data): byte
    strings and scalars inline, a call only for what nests."""
    out = []
    append = out.append
    for x in items:
        t = type(x)
        if t is bytes:
            try:
                append(x.decode())
            except UnicodeDecodeError:
                append({"b64": base64.b64encode(x).decode("ascii")})
        elif t is list or t is tuple:
            append(_list_to_json(x))
        elif t is int or t is str or x is None or t is bool:
            append(x)
        else:
            append(to_json(x))
    return out


def _score(score: float) -> Any:
    if math.isfinite(score):
        return score
    return "inf" if score > 0 else "-inf"


def _stream_entries(value: object) -> list:
    """Entries of a stream value, whatever the stream module calls them."""
    for attr in ("entries", "items"):
        found = getattr(value, attr, None)
        if found is None:
            continue
        if callable(found):
            found = found()
        if isinstance(found, dict) or hasattr(found, "items"):
            found = found.items()
        out = []
        for entry_id, fields in found:
            if not isinstance(entry_id, (bytes, str)):
                entry_id = b"%d-%d" % tuple(entry_id) if isinstance(entry_id, tuple) else str(entry_id).encode()
            flat = []
            for f in fields:
                if isinstance(f, (tuple, list)):
                    flat.extend(f)
                else:
                    flat.append(f)
            out.append([to_json(entry_id), [to_json(x) for x in flat]])
        return out
    raise TypeError(f"cannot image a stream value of type {type(value).__name__}")


def _texts(items) -> list:
    """Byte strings by the codec's rule; UTF-8 (the usual case) in one pass."""
    try:
        return [x.decode() for x in items]
    except UnicodeDecodeError:
        return [json_bytes(x) for x in items]


def _hash_image(v) -> list:
    try:
        return [[f.decode(), x.decode()] for f, x in v.items()]
    except UnicodeDecodeError:
        return [[json_bytes(f), json_bytes(x)] for f, x in v.items()]


def _zset_image(v) -> list:
    try:
        return [[m.decode(), _score(s)] for s, m in v.order]
    except UnicodeDecodeError:
        return [[json_bytes(m), _score(s)] for s, m in v.order]


def _register_builtin() -> None:
    IMAGERS.setdefault("list", _texts)
    IMAGERS.setdefault("hash", _hash_image)
    IMAGERS.setdefault("set", lambda v: _texts(sorted(v)))
    IMAGERS.setdefault("zset", _zset_image)
    IMAGERS.setdefault("stream", _stream_entries)


_register_builtin()


def image_of(value: object | None) -> dict | None:
    """The image of one key's value (None when there is no value)."""
    if value is None:
        return None
    if type(value) is bytes:
        return {"type": "string", "value": json_bytes(value)}
    found = _IMAGER_OF.get(type(value))
    if found is None:
        name = type_name(value).decode()
        imager = IMAGERS.get(name)
        if imager is None:
            raise TypeError(f"no image for values of type {name} ({type(value).__name__})")
        found = _IMAGER_OF[type(value)] = (name, imager)
    return {"type": found[0], "value": found[1](value)}


#: value class -> (TYPE name, imager), filled on first use (image_of runs per event)
_IMAGER_OF: dict[type, tuple[str, Callable[[object], Any]]] = {}

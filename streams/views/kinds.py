"""Built-in view kinds: a few lines each to declare.

- ``Count``/``Sum``/``Min``/``Max``: an aggregate of matching keys grouped by
  a hash field (``Field("status")``) or a part of the key (``KeyPart(1)``).
- ``Index``: secondary index, hash field value -> keys holding it.
- ``TopN``: leaderboard, keys ordered by a numeric score (hash field or the
  string value), optionally per group.
- ``Latest``: the last N events per group (an activity feed).

The keyed kinds fold *images*, not commands: for every change they compute
the key's contribution from its new image, retract the contribution it made
before (kept in the state per key) and add the new one. So HSET, HINCRBY,
RENAME, DEL, expiry, FLUSHDB all come out right without per-command code,
and the view equals what a scan of the keyspace would compute.
"""

from __future__ import annotations

import base64
import bisect
from typing import Any

from .view import Change, View, _num, _slice

ALL = b"all"


def as_bytes(v: Any) -> bytes | None:
    """An image's byte string back to bytes (JSON text, {"b64"}, or bytes)."""
    if v is None:
        return None
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, dict) and "b64" in v:
        return base64.b64decode(v["b64"])
    if isinstance(v, (int, float)):
        return _num(v)
    return None


def number(v: Any) -> int | float | None:
    """A numeric reading of an image value, None if it is not a number."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    b = as_bytes(v)
    if b is None:
        return None
    try:
        return int(b)
    except ValueError:
        try:
            f = float(b)
        except ValueError:
            return None
        return f if f == f and f not in (float("inf"), float("-inf")) else None


def hash_field(image: dict | None, name: bytes) -> bytes | None:
    """Field ``name`` of a hash image (value as a dict or [[f, v], ...])."""
    if image is None or image.get("type") != "hash":
        return None
    value = image.get("value")
    if isinstance(value, dict):  # a raw image: the hash itself
        return value.get(name)
    for pair in value or ():
        if as_bytes(pair[0]) == name:
            return as_bytes(pair[1])
    return None


class Field:
    """Reads hash field ``name`` from a key's image."""

    def __init__(self, name: str | bytes):
        self.name = name.encode() if isinstance(name, str) else name

    def __call__(self, key: bytes, image: dict | None) -> bytes | None:
        return hash_field(image, self.name)

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


class KeyPart:
    """Reads part ``index`` of the key split on ``sep`` (``order:7:paid``
    with index 2 gives ``paid``); None if the key has no such part."""

    def __init__(self, index: int, sep: str | bytes = b":"):
        self.index = index
        self.sep = sep.encode() if isinstance(sep, str) else sep

    def __call__(self, key: bytes, image: dict | None) -> bytes | None:
        if image is None:
            return None
        parts = key.split(self.sep)
        try:
            return parts[self.index]
        except IndexError:
            return None

    def __repr__(self) -> str:
        return f"KeyPart({self.index}, {self.sep!r})"


class Value:
    """Reads a string key's value."""

    def __call__(self, key: bytes, image: dict | None) -> bytes | None:
        if image is None or image.get("type") != "string":
            return None
        return as_bytes(image.get("value"))

    def __repr__(self) -> str:
        return "Value()"


def _group(by, key: bytes, image: dict | None) -> bytes | None:
    if by is None:
        return ALL if image is not None else None
    return by(key, image)


class KeyedView(View):
    """A view where each key contributes at most one (group, value) pair,
    recomputed from its new image on every change to it."""

    images = "raw"

    #: state layout: {"keys": {(db, key): (group, value)}, "groups": {...}}

    def initial(self) -> dict:
        return {"keys": {}, "groups": {}}

    def contribution(self, key: bytes, image: dict | None) -> tuple[bytes, Any] | None:
        raise NotImplementedError

    def add(self, groups: dict, group: bytes, value: Any, key: bytes) -> None:
        raise NotImplementedError

    def remove(self, groups: dict, group: bytes, value: Any, key: bytes) -> None:
        raise NotImplementedError

    def apply(self, state: dict, change: Change) -> set[bytes]:
        ev = change.event
        keys, groups = state["keys"], state["groups"]
        touched: set[bytes] = set()
        if ev.key is None:  # flushdb / flushall: every key of the db(s) goes
            for slot in [s for s in keys if ev.type == "flushall" or s[0] == ev.db]:
                group, value = keys.pop(slot)
                self.remove(groups, group, value, slot[1])
                touched.add(group)
            return touched
        slot = (ev.db, ev.key)
        before = keys.get(slot)
        after = self.contribution(ev.key, change.new)
        if before == after:
            return touched
        if before is not None:
            self.remove(groups, before[0], before[1], ev.key)
            touched.add(before[0])
            del keys[slot]
        if after is not None:
            self.add(groups, after[0], after[1], ev.key)
            keys[slot] = after
            touched.add(after[0])
        return touched

    def groups(self, state: dict) -> list[bytes]:
        return sorted(state["groups"])

    def definition(self) -> dict:
        return {"kind": self.kind(), **{k: repr(v) for k, v in sorted(self.params().items())}}

    def params(self) -> dict:
        return {}

    def describe(self) -> dict:
        return {**super().describe(), **{k: repr(v) for k, v in self.params().items()}}


class Aggregate(KeyedView):
    """``op`` (count, sum, min, max) of ``value`` over matching keys, per
    group of ``by`` (a ``Field``/``KeyPart``/callable; None: one group
    named ``all``). Keys whose group or value is missing do not count."""

    op = "count"

    def __init__(self, name: str | None = None, *, by=None, value=None, op: str | None = None, **kw):
        super().__init__(name, **kw)
        self.by = by
        self.value = value
        if op is not None:
            self.op = op
        if self.op not in ("count", "sum", "min", "max"):
            raise ValueError(f"unknown aggregate {self.op!r}")
        if self.op != "count" and value is None:
            raise ValueError(f"{self.op} needs value=Field(...) or Value()")

    def kind(self) -> str:
        return self.op

    def params(self) -> dict:
        return {"by": self.by, "value": self.value, "op": self.op}

    def contribution(self, key, image):
        if image is None:
            return None
        group = _group(self.by, key, image)
        if group is None:
            return None
        if self.op == "count":
            return (group, 1)
        v = number(self.value(key, image))
        return None if v is None else (group, v)

    def add(self, groups, group, value, key):
        if self.op in ("count", "sum"):  # [total, contributing keys]
            slot = groups.get(group)
            if slot is None:
                groups[group] = [value, 1]
            else:
                slot[0] += value
                slot[1] += 1
        else:  # min/max keep a multiset so a retraction can reveal the next one
            bag = groups.setdefault(group, {})
            bag[value] = bag.get(value, 0) + 1

    def remove(self, groups, group, value, key):
        if self.op in ("count", "sum"):
            slot = groups[group]
            slot[1] -= 1
            if not slot[1]:  # a group nobody contributes to any more disappears
                del groups[group]
            else:
                slot[0] -= value
        else:
            bag = groups[group]
            bag[value] -= 1
            if not bag[value]:
                del bag[value]
            if not bag:
                del groups[group]

    def get(self, state, group):
        v = state["groups"].get(group)
        if v is None:
            return None
        if self.op == "min":
            return min(v)
        if self.op == "max":
            return max(v)
        return v[0]


class Count(Aggregate):
    op = "count"


class Sum(Aggregate):
    op = "sum"


class Min(Aggregate):
    op = "min"


class Max(Aggregate):
    op = "max"


class Index(KeyedView):
    """Secondary index: value of hash ``field`` -> sorted keys holding it."""

    def __init__(self, name: str | None = None, *, field, **kw):
        super().__init__(name, **kw)
        self.field = Field(field) if isinstance(field, (str, bytes)) else field

    def params(self) -> dict:
        return {"field": self.field}

    def contribution(self, key, image):
        v = self.field(key, image)
        return None if v is None else (v, None)

    def add(self, groups, group, value, key):
        groups.setdefault(group, set()).add(key)

    def remove(self, groups, group, value, key):
        members = groups[group]
        members.discard(key)
        if not members:
            del groups[group]

    def get(self, state, group):
        members = state["groups"].get(group)
        return sorted(members) if members else None

    def writeback_value(self, state, group):
        members = self.get(state, group)
        return None if members is None else ("set", members)


class TopN(KeyedView):
    """Leaderboard: keys by ``score`` (highest first), the best ``n`` per
    group. ``GET name group`` gives ``[[key, score], ...]``; ``RANGE``
    ranks the ``all`` group (or every group's entries when grouped)."""

    def __init__(self, name: str | None = None, *, score, n: int = 10, by=None, **kw):
        super().__init__(name, **kw)
        self.score = Field(score) if isinstance(score, (str, bytes)) else score
        self.n = n
        self.by = by

    def kind(self) -> str:
        return "topn"

    def params(self) -> dict:
        return {"score": self.score, "n": self.n, "by": self.by}

    def contribution(self, key, image):
        if image is None:
            return None
        group = _group(self.by, key, image)
        v = number(self.score(key, image))
        return None if group is None or v is None else (group, v)

    def add(self, groups, group, value, key):
        bisect.insort(groups.setdefault(group, []), (-value, key))

    def remove(self, groups, group, value, key):
        board = groups[group]
        i = bisect.bisect_left(board, (-value, key))
        del board[i]
        if not board:
            del groups[group]

    def get(self, state, group):
        board = state["groups"].get(group)
        if not board:
            return None
        return [[key, -neg] for neg, key in board[:self.n]]

    def range(self, state, start, stop):
        board = state["groups"].get(ALL) if self.by is None else None
        if board is None:
            board = sorted(e for b in state["groups"].values() for e in b)
        return [[key, -neg] for neg, key in _slice(board, start, stop)]

    def writeback_value(self, state, group):
        top = self.get(state, group)
        return None if top is None else ("zset", top)


class Latest(View):
    """The last ``n`` matching events per group (``by`` on the key or the
    image, new image first, else old): ``[offset, time_ms, type, key]``
    entries, newest first."""

    def __init__(self, name: str | None = None, *, by=None, n: int = 10, **kw):
        super().__init__(name, **kw)
        self.by = by
        self.n = n
        # grouped by the key (or not at all) it needs no images: cheaper feeds
        self.images = not (by is None or isinstance(by, KeyPart))

    def kind(self) -> str:
        return "latest"

    def definition(self) -> dict:
        return {"kind": "latest", "by": repr(self.by), "n": self.n}

    def describe(self) -> dict:
        return {**super().describe(), "by": repr(self.by), "n": self.n}

    def apply(self, state, change):
        ev = change.event
        if ev.key is None:
            return set()
        image = change.new if change.new is not None else change.old
        if self.by is None:
            group = ALL
        elif isinstance(self.by, KeyPart):
            group = self.by(ev.key, {"type": "any"})
        else:
            group = self.by(ev.key, image if image is not None else {"type": "none"})
        if group is None:
            return set()
        feed = state.setdefault(group, [])
        feed.insert(0, [change.offset, change.time_ms, ev.type.encode(), ev.key])
        del feed[self.n:]
        return {group}

    def writeback_value(self, state, group):
        feed = state.get(group)
        if not feed:
            return None
        return ("list", [b"%d %d %s %s" % (o, t, ty, k) for o, t, ty, k in feed])

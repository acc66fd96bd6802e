"""The in-memory keyspace and the one place events change it.

``Keyspace.apply(event)`` is the only mutator. The live server calls it as
each command emits an event, and replay calls it for each event read from the
log, so the live state and the replayed state are produced by the same code
and cannot drift apart. Appliers never read the clock: an event carries every
time it needs (absolute expiry times), which keeps replay deterministic.

Values: ``bytes`` for strings; each other data type module registers its own
value class and appliers. ``expires`` maps key -> absolute expiry in unix ms.
"""

from __future__ import annotations

from typing import Callable

from streams.events import Event

DEFAULT_DATABASES = 16

Applier = Callable[["Keyspace", Event], None]
APPLIERS: dict[str, Applier] = {}
#: value class -> the name TYPE reports
TYPE_NAMES: dict[type, bytes] = {bytes: b"string"}
#: value class -> function making an independent copy (COPY)
COPIERS: dict[type, Callable[[object], object]] = {bytes: lambda v: v}
#: value class -> function naming the encoding OBJECT ENCODING reports for a
#: value (as Redis 7.0 would store it); types without one report by type name
ENCODINGS: dict[type, Callable[[object], bytes]] = {}


def applies(*types: str):
    """Register the applier for one or more event types."""

    def deco(fn: Applier) -> Applier:
        for t in types:
            if t in APPLIERS:
                raise ValueError(f"event type {t!r} has two appliers")
            APPLIERS[t] = fn
        return fn

    return deco


def type_name(value: object) -> bytes:
    return TYPE_NAMES.get(type(value), b"none")


def copy_value(value: object) -> object:
    return COPIERS[type(value)](value)


class Db:
    """One numbered database: values and absolute expiry times (unix ms)."""

    __slots__ = ("index", "data", "expires")

    def __init__(self, index: int):
        self.index = index
        self.data: dict[bytes, object] = {}
        self.expires: dict[bytes, int] = {}

    def clear(self) -> None:
        self.data.clear()
        self.expires.clear()

    def remove(self, key: bytes) -> None:
        del self.data[key]
        self.expires.pop(key, None)


class Keyspace:
    """All databases, and ``apply`` for every event type."""

    def __init__(self, databases: int = DEFAULT_DATABASES):
        self.dbs = [Db(i) for i in range(databases)]
        #: events applied since start (or the last rebuild)
        self.applied_events = 0
        #: callables told of every applied event (WATCH, blocked clients,
        #: notifications). Register one only while it has work, so the
        #: common case costs a single truth test per event.
        self.observers: list[Callable[[Event], None]] = []
        #: store-level metadata that is not Redis data (trigger and view
        #: definitions): (namespace, name) -> value, changed only by the
        #: ``fjord-meta-set``/``fjord-meta-del`` events, so it is durable and
        #: replayed like data, yet no Redis command sees it
        self.meta: dict[tuple[str, str], bytes] = {}

    def apply(self, event: Event) -> None:
        try:
            applier = APPLIERS[event.type]
        except KeyError:
            raise ValueError(f"no applier for event type {event.type!r}") from None
        applier(self, event)
        self.applied_events += 1
        if self.observers:
            # a copy: an observer may unregister itself (or another) as it
            # runs, and the ones after it must still see the event
            for observer in tuple(self.observers):
                observer(event)

    def reset(self) -> None:
        """Drop all state (before a rebuild from the log)."""
        for db in self.dbs:
            db.clear()
        self.meta.clear()
        self.applied_events = 0

    def key_count(self) -> int:
        return sum(len(db.data) for db in self.dbs)


# --------------------------------------------------------------- generic events


@applies("del", "expired", "evicted")
def _apply_del(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    db.data.pop(e.key, None)
    db.expires.pop(e.key, None)


@applies("expire")
def _apply_expire(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    if e.key in db.data:
        db.expires[e.key] = e.data["at"]


@applies("persist")
def _apply_persist(ks: Keyspace, e: Event) -> None:
    ks.dbs[e.db].expires.pop(e.key, None)


def _move(src: Db, key: bytes, dst: Db, newkey: bytes) -> None:
    value = src.data.pop(key)
    exp = src.expires.pop(key, None)
    dst.data.pop(newkey, None)
    dst.expires.pop(newkey, None)
    dst.data[newkey] = value
    if exp is not None:
        dst.expires[newkey] = exp


@applies("rename_from")
def _apply_rename_from(ks: Keyspace, e: Event) -> None:
    """The move itself; the paired ``rename_to`` event only announces it."""
    db = ks.dbs[e.db]
    _move(db, e.key, db, e.data["to"])


@applies("move_from")
def _apply_move_from(ks: Keyspace, e: Event) -> None:
    _move(ks.dbs[e.db], e.key, ks.dbs[e.data["to_db"]], e.key)


@applies("rename_to", "move_to")
def _apply_announcement(ks: Keyspace, e: Event) -> None:
    """Second half of a pair whose first half did the work."""


@applies("copy_to")
def _apply_copy_to(ks: Keyspace, e: Event) -> None:
    src = ks.dbs[e.data["from_db"]]
    dst = ks.dbs[e.db]
    value = src.data[e.data["from"]]
    exp = src.expires.get(e.data["from"])
    dst.data[e.key] = copy_value(value)
    if exp is None:
        dst.expires.pop(e.key, None)
    else:
        dst.expires[e.key] = exp


def _text(v) -> str:
    """Meta names come back from the log as bytes (the codec's rule)."""
    return v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else v


@applies("fjord-meta-set")
def _apply_meta_set(ks: Keyspace, e: Event) -> None:
    value = e.data["value"]
    ks.meta[(_text(e.data["ns"]), _text(e.data["name"]))] = value if isinstance(value, bytes) else value.encode()


@applies("fjord-meta-del")
def _apply_meta_del(ks: Keyspace, e: Event) -> None:
    ks.meta.pop((_text(e.data["ns"]), _text(e.data["name"])), None)


@applies("fjord-epoch")
def _apply_epoch_claim(ks: Keyspace, e: Event) -> None:
    """A winning epoch claim (store/fencing.py): kept in ``meta`` so that
    snapshots carry the current epoch and the writer's address."""
    d = e.data
    ks.meta[("fjord", "epoch")] = b"%d %s %s" % (d["epoch"], d.get("node") or b"-", d.get("addr") or b"-")


@applies("flushdb")
def _apply_flushdb(ks: Keyspace, e: Event) -> None:
    ks.dbs[e.db].clear()


@applies("flushall")
def _apply_flushall(ks: Keyspace, e: Event) -> None:
    for db in ks.dbs:
        db.clear()

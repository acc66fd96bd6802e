"""The keyspace as events, for snapshots (``streams/snapshot.py``).

``state_events(keyspace)`` yields, for every key of every database, events
that recreate it through ``Keyspace.apply`` on an empty keyspace: a string is
one ``set`` (its expiry inside), a collection is one or more ``hset`` /
``rpush`` / ``sadd`` / ``zadd`` events (big values are split so no event is
huge), followed by ``expire`` when the key has a TTL. Each value class
registers its dumper in ``DUMPERS`` (like ``keyspace.COPIERS``), so a new
type adds one function and snapshots carry it.

Loading a snapshot and running the snapshotter both need every data type
registered: ``load_types()`` imports the command modules that register them.
"""

from __future__ import annotations

from typing import Callable, Iterator

from streams.events import Event

from .keyspace import Keyspace

#: members per event when a collection is split
SPLIT = 1000

Dumper = Callable[[int, bytes, object], Iterator[Event]]
#: value class -> function(db, key, value) yielding events that recreate it
DUMPERS: dict[type, Dumper] = {}


def dumps(cls: type):
    """Register the dumper of a value class."""

    def deco(fn: Dumper) -> Dumper:
        DUMPERS[cls] = fn
        return fn

    return deco


def load_types() -> None:
    """Import every data type (their appliers and dumpers)."""
    from . import commands  # noqa: F401 - registers every command and value class
    _register_builtin_dumpers()


def state_events(keyspace: Keyspace) -> Iterator[Event]:
    """Events recreating every key of ``keyspace`` (see the module doc)."""
    _register_builtin_dumpers()
    for db in keyspace.dbs:
        expires = db.expires
        for key, value in db.data.items():
            if type(value) is bytes:
                yield Event("set", db.index, key, {"value": value, "expire_at": expires.get(key)})
                continue
            try:
                dumper = DUMPERS[type(value)]
            except KeyError:
                raise TypeError(f"no snapshot dumper for values of type {type(value).__name__}") from None
            yield from dumper(db.index, key, value)
            at = expires.get(key)
            if at is not None:
                yield Event("expire", db.index, key, {"at": at})


def _split(items: list) -> Iterator[list]:
    for i in range(0, len(items), SPLIT):
        yield items[i:i + SPLIT]


_registered = False


def _register_builtin_dumpers() -> None:
    """Dumpers of the built-in collection types (done lazily: the type
    modules import the command table, which imports much of the store)."""
    global _registered
    if _registered:
        return
    _registered = True
    from .commands.hashes import HashValue
    from .commands.lists import ListValue
    from .commands.sets import SetValue
    from .zset import ZSet, format_score

    @dumps(HashValue)
    def _hash(db: int, key: bytes, h: HashValue) -> Iterator[Event]:
        for part in _split([[f, v] for f, v in h.items()]):
            yield Event("hset", db, key, {"fields": part})

    @dumps(ListValue)
    def _list(db: int, key: bytes, lst: ListValue) -> Iterator[Event]:
        for part in _split(list(lst)):
            yield Event("rpush", db, key, {"elements": part})

    @dumps(SetValue)
    def _set(db: int, key: bytes, st: SetValue) -> Iterator[Event]:
        for part in _split(list(st)):
            yield Event("sadd", db, key, {"members": part})

    @dumps(ZSet)
    def _zset(db: int, key: bytes, z: ZSet) -> Iterator[Event]:
        for part in _split([[format_score(score), member] for score, member in z]):
            yield Event("zadd", db, key, {"members": part})

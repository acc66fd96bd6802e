"""The keyspace as columnar sections, for snapshots (``streams/snapshot.py``).

``state_sections(keyspace)`` yields sections, each a dict holding keys of
one type in one database, column by column::

    {"db": 0, "type": "string", "keys": [k, ...], "values": [v, ...],
     "expires": [ms or None, ...]}          # "expires" only if a key has one

Columns, not one record per key: msgpack decodes a list of a million byte
strings in a fraction of the time a million small maps take, and the loader
then builds the values and does one ``dict.update`` per section, so a
snapshot loads several times faster than replaying events would.

A string's value is its bytes; a collection's value is a flat list (hash:
``f, v, f, v...``; list: elements; set: members; zset: ``score, member, ...``
with scores as ``format_score`` bytes, so ``inf`` round-trips). A collection
bigger than ``PART_ITEMS`` gets sections of its own: the first creates the
key, the next ones carry ``"append": True`` and extend it, so no section is
huge. A section holds at most ``SECTION_KEYS`` keys and is cut once its
values carry about ``SECTION_BYTES``.

Each value class registers a ``SectionType`` in ``DUMPERS`` (and by name in
``LOADERS``), like ``keyspace.COPIERS``, so a new type adds one entry and
snapshots carry it. Loading a snapshot and running the snapshotter both need
every data type registered: ``load_types()`` imports the command modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Callable, Iterable, Iterator

from .keyspace import Keyspace

#: at most this many keys per section
SECTION_KEYS = 50_000
#: a section is cut once its keys and values carry about this many bytes
SECTION_BYTES = 8 << 20
#: a collection with more flat items than this spans sections of its own
PART_ITEMS = 100_000


@dataclass(frozen=True)
class SectionType:
    """How one value class goes into sections and comes back."""

    name: str
    #: value -> flat list (or bytes for strings)
    encode: Callable[[object], object]
    #: flat list -> a new value
    decode: Callable[[object], object]
    #: add a later part (a flat list) to a value that spans sections
    extend: Callable[[object, list], None] | None = None
    #: flat items per element (2 for field/value and score/member pairs)
    step: int = 1
    #: called once a load is over with every value that got parts appended
    finish: Callable[[object], None] | None = None


#: value class -> its SectionType (dumping)
DUMPERS: dict[type, SectionType] = {}
#: section "type" name -> its SectionType (loading)
LOADERS: dict[str, SectionType] = {}


def register(cls: type, st: SectionType) -> None:
    DUMPERS[cls] = st
    LOADERS[st.name] = st


def load_types() -> None:
    """Import every data type (their appliers and section types)."""
    from . import commands  # noqa: F401 - registers every command and value class
    _register_builtin_types()


# ------------------------------------------------------------------ dumping


class _Batch:
    """Keys of one type in one db, gathered until a section is full."""

    __slots__ = ("keys", "values", "size")

    def __init__(self):
        self.keys: list[bytes] = []
        self.values: list = []
        self.size = 0


def _section(db, name: str, keys: list, values: list, append: bool = False) -> dict:
    sec = {"db": db.index, "type": name, "keys": keys, "values": values}
    if db.expires and not append:
        get = db.expires.get
        exp = [get(k) for k in keys]
        if any(at is not None for at in exp):
            sec["expires"] = exp
    if append:
        sec["append"] = True
    return sec


def state_sections(keyspace: Keyspace) -> Iterator[dict]:
    """Sections recreating every key of ``keyspace`` (see the module doc)."""
    _register_builtin_types()
    for db in keyspace.dbs:
        batches: dict[str, _Batch] = {}
        strings = _Batch()
        for key, value in db.data.items():
            if type(value) is bytes:
                strings.keys.append(key)
                strings.values.append(value)
                strings.size += len(key) + len(value) + 8
                if len(strings.keys) >= SECTION_KEYS or strings.size >= SECTION_BYTES:
                    yield _section(db, "string", strings.keys, strings.values)
                    strings = _Batch()
                continue
            try:
                st = DUMPERS[type(value)]
            except KeyError:
                raise TypeError(f"no snapshot dumper for values of type {type(value).__name__}") from None
            flat = st.encode(value)
            if len(flat) > PART_ITEMS:
                yield from _parts(db, st, key, flat)
                continue
            b = batches.get(st.name)
            if b is None:
                b = batches[st.name] = _Batch()
            b.keys.append(key)
            b.values.append(flat)
            b.size += len(key) + 16 * len(flat) + 8
            if len(b.keys) >= SECTION_KEYS or b.size >= SECTION_BYTES:
                yield _section(db, st.name, b.keys, b.values)
                batches[st.name] = _Batch()
        if strings.keys:
            yield _section(db, "string", strings.keys, strings.values)
        for name, b in batches.items():
            if b.keys:
                yield _section(db, name, b.keys, b.values)
    if keyspace.meta:
        yield meta_section(keyspace)


#: section type of the store-level metadata (``Keyspace.meta``)
META = "fjord-meta"


def meta_section(keyspace: Keyspace) -> dict:
    """``Keyspace.meta`` (trigger and view definitions) as one section:
    keys are ``namespace NUL name``, values the stored bytes."""
    keys = [ns.encode() + b"\0" + name.encode() for ns, name in keyspace.meta]
    return {"db": 0, "type": META, "keys": keys, "values": list(keyspace.meta.values())}


def _parts(db, st: SectionType, key: bytes, flat: list) -> Iterator[dict]:
    """A big collection in sections of its own, ``PART_ITEMS`` flat items
    each (whole elements: a part never splits a field from its value)."""
    n = PART_ITEMS - PART_ITEMS % st.step
    for i in range(0, len(flat), n):
        yield _section(db, st.name, [key], [flat[i:i + n]], append=i > 0)


def section_keys(section: dict) -> int:
    """Keys a section creates (an appended part creates none): the item
    count ``write_snapshot`` puts in the header, for loading progress."""
    return 0 if section.get("append") or section.get("type") == META else len(section["keys"])


def write_state(directory: str, offset: int, time_ms: int, keyspace: Keyspace):
    """Write ``keyspace`` as the snapshot at ``offset``."""
    from streams.snapshot import write_snapshot

    return write_snapshot(directory, offset, time_ms, state_sections(keyspace), weigh=section_keys)


# ------------------------------------------------------------------ loading


class SectionLoader:
    """Applies sections to an empty keyspace, one at a time (so a caller
    can report progress in between); ``finish()`` once all are in."""

    def __init__(self, keyspace: Keyspace):
        _register_builtin_types()
        self.keyspace = keyspace
        self._extended: dict[int, tuple[SectionType, object]] = {}

    def load(self, section: dict) -> int:
        """Apply one section; returns the keys it created."""
        try:
            db = self.keyspace.dbs[section["db"]]
            name = section["type"]
            keys = section["keys"]
            values = section["values"]
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed snapshot section: {exc!r}") from None
        if name == META:
            for k, v in zip(keys, values):
                ns, _, meta_name = k.partition(b"\0")
                self.keyspace.meta[(ns.decode(), meta_name.decode())] = v
            return 0
        if section.get("append"):
            st = LOADERS[name]
            for key, part in zip(keys, values):
                value = db.data[key]
                st.extend(value, part)
                if st.finish is not None:
                    self._extended[id(value)] = (st, value)
            return 0
        if name == "string":
            db.data.update(zip(keys, values))
        else:
            try:
                decode = LOADERS[name].decode
            except KeyError:
                raise ValueError(f"snapshot section of unknown type {name!r}") from None
            db.data.update(zip(keys, map(decode, values)))
        exp = section.get("expires")
        if exp is not None:
            db.expires.update((k, at) for k, at in zip(keys, exp) if at is not None)
        return len(keys)

    def finish(self) -> None:
        for st, value in self._extended.values():
            st.finish(value)
        self._extended.clear()


def load_sections(keyspace: Keyspace, sections: Iterable[dict]) -> int:
    """Apply every section to the (empty) ``keyspace``; returns the keys."""
    loader = SectionLoader(keyspace)
    n = sum(loader.load(s) for s in sections)
    loader.finish()
    return n


# ------------------------------------------------------------------ built-in types


_registered = False


def _register_builtin_types() -> None:
    """Section types of the built-in collections (done lazily: the type
    modules import the command table, which imports much of the store)."""
    global _registered
    if _registered:
        return
    _registered = True
    from sortedcontainers import SortedList

    from .commands.hashes import HashValue
    from .commands.lists import ListValue
    from .commands.sets import SetValue
    from .zset import ZSet, format_score

    def _pairs(flat: list):
        it = iter(flat)
        return zip(it, it)

    register(HashValue, SectionType(
        "hash", lambda h: list(chain.from_iterable(h.items())),
        lambda flat: HashValue(_pairs(flat)), lambda h, flat: h.update(_pairs(flat)), step=2))
    register(ListValue, SectionType("list", list, ListValue, ListValue.extend))
    register(SetValue, SectionType("set", list, SetValue, SetValue.update))

    def _zset_encode(z: ZSet) -> list:
        out = []
        add = out.extend
        for score, member in z.order:
            add((format_score(score), member))
        return out

    def _zset_decode(flat: list) -> ZSet:
        z = ZSet()
        scores = list(map(float, flat[0::2]))
        members = flat[1::2]
        z.scores = dict(zip(members, scores))
        z.order = SortedList(zip(scores, members))
        return z

    def _zset_extend(z: ZSet, flat: list) -> None:
        # parts come in (score, member) order; the order is rebuilt once in finish
        z.scores.update(zip(flat[1::2], map(float, flat[0::2])))

    def _zset_finish(z: ZSet) -> None:
        z.order = SortedList((score, member) for member, score in z.scores.items())

    register(ZSet, SectionType("zset", _zset_encode, _zset_decode, _zset_extend, step=2, finish=_zset_finish))

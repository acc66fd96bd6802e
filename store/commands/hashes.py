"""Hash commands (Redis's t_hash.c) and the appliers of hash events.

A hash is a ``HashValue``: a dict of bytes field -> bytes value. Python dicts
keep insertion order, which is the order Redis replies in for small
(listpack-encoded) hashes, so HGETALL/HKEYS/HVALS/HSCAN of a small hash match
redis-server byte for byte.

Events (Redis keyspace-notification names, effects only):

- ``hset`` {fields: [[field, value], ...]}: HSET, HSETNX, HMSET
- ``hincrby`` {field, value: the resulting integer}
- ``hincrbyfloat`` {field, value: the resulting value as stored, e.g. "10.6"}
- ``hdel`` {fields: [field, ...]}: only fields that existed

The applier that leaves a hash empty deletes the key (Redis never keeps an
empty collection), so no separate ``del`` event is written for it.

HINCRBYFLOAT adds in Redis's ``long double`` (``store.longdouble``), so
``0.1`` + ``0.2`` stores ``0.3`` as Redis does, not ``0.30000000000000004``.
"""

from __future__ import annotations

from streams.events import Event

from .. import errors, longdouble
from ..keyspace import COPIERS, ENCODINGS, TYPE_NAMES, Keyspace, applies
from ..resp import OK, ReplyError, RespMap
from ..session import Session
from .args import INT64_MAX, INT64_MIN, parse_int
from .sets import parse_count, parse_scan_args, random_member, random_members, scan_page
from .table import command


class HashValue(dict):
    """A hash: bytes field -> bytes value, in insertion order. A class of its
    own so TYPE and type checks tell it from any other dict-based value."""

    __slots__ = ()


#: Redis 7.0 keeps a hash this small, with fields and values this short, as a
#: listpack (hash-max-listpack-entries/-value) and HSCAN returns it in one
#: call; Fjord returns any hash of up to LISTPACK_ENTRIES fields in one call
LISTPACK_ENTRIES = 512  # redis-server 7.0.15 default (redis.conf ships 128)
LISTPACK_VALUE = 64
#: HRANDFIELD with a negative count repeats fields; bound the reply size
MAX_RANDOM_REPLY = 1 << 24


def _encoding(h: HashValue) -> bytes:
    if len(h) <= LISTPACK_ENTRIES and all(
            len(f) <= LISTPACK_VALUE and len(v) <= LISTPACK_VALUE for f, v in h.items()):
        return b"listpack"
    return b"hashtable"


TYPE_NAMES[HashValue] = b"hash"
COPIERS[HashValue] = HashValue  # fields and values are immutable bytes
ENCODINGS[HashValue] = _encoding

# ------------------------------------------------------------------ appliers


@applies("hset")
def _apply_hset(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    h = data.get(e.key)
    if h is None:
        h = data[e.key] = HashValue()
    h.update(e.data["fields"])


@applies("hincrby")
def _apply_hincrby(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    h = data.get(e.key)
    if h is None:
        h = data[e.key] = HashValue()
    h[e.data["field"]] = b"%d" % e.data["value"]


@applies("hincrbyfloat")
def _apply_hincrbyfloat(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    h = data.get(e.key)
    if h is None:
        h = data[e.key] = HashValue()
    h[e.data["field"]] = e.data["value"]


@applies("hdel")
def _apply_hdel(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    h = db.data[e.key]
    for f in e.data["fields"]:
        h.pop(f, None)
    if not h:
        db.remove(e.key)


# ------------------------------------------------------------------ helpers


def _hash(s: Session, key: bytes) -> HashValue | None:
    """The hash at ``key``, None if absent; WRONGTYPE for any other type."""
    h = s.lookup(key)
    if h is not None and type(h) is not HashValue:
        raise ReplyError(errors.WRONGTYPE)
    return h


def _pairs(args: list[bytes]) -> list[list[bytes]]:
    if len(args) == 4:
        return [[args[2], args[3]]]
    return list(map(list, zip(args[2::2], args[3::2])))


# ------------------------------------------------------------------ writes


@command("hset", -4, "write denyoom fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Set the string value of a hash field",
         complexity="O(1) for each field/value pair added, so O(N) to add N field/value pairs "
                    "when the command is called with multiple field/value pairs.")
def hset(s: Session, args: list[bytes]):
    n = len(args)
    if n & 1:
        raise ReplyError(errors.wrong_arity("hset"))
    key = args[1]
    h = s.lookup(key)
    if h is None:
        s.emit("hset", key, {"fields": _pairs(args)})
        return 1 if n == 4 else len(s.db.data[key])
    if type(h) is not HashValue:
        raise ReplyError(errors.WRONGTYPE)
    if n == 4:  # the common case, without a before/after count
        added = 0 if args[2] in h else 1
        s.emit("hset", key, {"fields": [[args[2], args[3]]]})
        return added
    before = len(h)
    s.emit("hset", key, {"fields": _pairs(args)})
    return len(h) - before


@command("hmset", -4, "write denyoom fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Set multiple hash fields to multiple values",
         complexity="O(N) where N is the number of fields being set.")
def hmset(s: Session, args: list[bytes]):
    if len(args) & 1:
        raise ReplyError(errors.wrong_arity("hmset"))
    _hash(s, args[1])
    s.emit("hset", args[1], {"fields": _pairs(args)})
    return OK


@command("hsetnx", 4, "write denyoom fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Set the value of a hash field, only if the field does not exist", complexity="O(1)")
def hsetnx(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    if h is not None and args[2] in h:
        return 0
    s.emit("hset", args[1], {"fields": [[args[2], args[3]]]})
    return 1


@command("hdel", -3, "write fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Delete one or more hash fields",
         complexity="O(N) where N is the number of fields to be removed.")
def hdel(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    if h is None:
        return 0
    gone = [f for f in dict.fromkeys(args[2:]) if f in h]
    if gone:
        s.emit("hdel", args[1], {"fields": gone})
    return len(gone)


@command("hincrby", 4, "write denyoom fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Increment the integer value of a hash field by the given number", complexity="O(1)")
def hincrby(s: Session, args: list[bytes]):
    incr = parse_int(args[3])
    h = _hash(s, args[1])
    old = h.get(args[2]) if h is not None else None
    value = incr if old is None else parse_int(old, errors.HASH_NOT_INTEGER) + incr
    if value < INT64_MIN or value > INT64_MAX:
        raise ReplyError(errors.OVERFLOW)
    s.emit("hincrby", args[1], {"field": args[2], "value": value})
    return value


@command("hincrbyfloat", 4, "write denyoom fast", (1, 1, 1), group="hash", since="2.6.0",
         summary="Increment the float value of a hash field by the given amount", complexity="O(1)")
def hincrbyfloat(s: Session, args: list[bytes]):
    incr = longdouble.parse(args[3])
    if incr is None:
        raise ReplyError(errors.NOT_FLOAT)
    if type(incr) is float:  # an infinity
        raise ReplyError(errors.VALUE_NAN_OR_INFINITY)
    h = _hash(s, args[1])
    old = h.get(args[2]) if h is not None else None
    if old is not None:
        base = longdouble.parse(old)
        if base is None:
            raise ReplyError(errors.HASH_NOT_FLOAT)
        incr = longdouble.add(base, incr)
        if incr is None:
            raise ReplyError(errors.NAN_OR_INFINITY)
    value = longdouble.format_human(incr)
    s.emit("hincrbyfloat", args[1], {"field": args[2], "value": value})
    return value


# ------------------------------------------------------------------ reads


@command("hget", 3, "readonly fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Get the value of a hash field", complexity="O(1)")
def hget(s: Session, args: list[bytes]):
    h = s.lookup(args[1])
    if h is None:
        return None
    if type(h) is not HashValue:
        raise ReplyError(errors.WRONGTYPE)
    return h.get(args[2])


@command("hmget", -3, "readonly fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Get the values of all the given hash fields",
         complexity="O(N) where N is the number of fields being requested.")
def hmget(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    if h is None:
        return [None] * (len(args) - 2)
    get = h.get
    return [get(f) for f in args[2:]]


@command("hgetall", 2, "readonly", (1, 1, 1), group="hash", since="2.0.0",
         summary="Get all the fields and values in a hash",
         complexity="O(N) where N is the size of the hash.")
def hgetall(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    return RespMap(h.items()) if h is not None else RespMap()


@command("hkeys", 2, "readonly", (1, 1, 1), group="hash", since="2.0.0",
         summary="Get all the fields in a hash", complexity="O(N) where N is the size of the hash.")
def hkeys(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    return list(h) if h is not None else []


@command("hvals", 2, "readonly", (1, 1, 1), group="hash", since="2.0.0",
         summary="Get all the values in a hash", complexity="O(N) where N is the size of the hash.")
def hvals(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    return list(h.values()) if h is not None else []


@command("hlen", 2, "readonly fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Get the number of fields in a hash", complexity="O(1)")
def hlen(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    return len(h) if h is not None else 0


@command("hexists", 3, "readonly fast", (1, 1, 1), group="hash", since="2.0.0",
         summary="Determine if a hash field exists", complexity="O(1)")
def hexists(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    return 1 if h is not None and args[2] in h else 0


@command("hstrlen", 3, "readonly fast", (1, 1, 1), group="hash", since="3.2.0",
         summary="Get the length of the value of a hash field", complexity="O(1)")
def hstrlen(s: Session, args: list[bytes]):
    h = _hash(s, args[1])
    return len(h.get(args[2], b"")) if h is not None else 0


@command("hrandfield", -2, "readonly random", (1, 1, 1), group="hash", since="6.2.0",
         summary="Get one or multiple random fields from a hash",
         complexity="O(N) where N is the number of fields returned")
def hrandfield(s: Session, args: list[bytes]):
    if len(args) == 2:
        h = _hash(s, args[1])
        if h is None:
            return None
        return random_member(s, ("hash", s.db_index, args[1]), h)
    count = parse_count(args[2])
    withvalues = False
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHVALUES"):
        raise ReplyError(errors.SYNTAX)
    if len(args) == 4:
        withvalues = True
        if count < -(INT64_MAX // 2) or count > INT64_MAX // 2:
            raise ReplyError(errors.OUT_OF_RANGE)
    h = _hash(s, args[1])
    if h is None or count == 0:
        return []
    if count >= len(h):
        fields = list(h)
    else:
        if count < -MAX_RANDOM_REPLY:
            raise ReplyError(errors.OUT_OF_RANGE)
        fields = random_members(s, ("hash", s.db_index, args[1]), h, abs(count), distinct=count > 0)
    if not withvalues:
        return fields
    if s.resp3:
        return [[f, h[f]] for f in fields]
    out = []
    for f in fields:
        out.append(f)
        out.append(h[f])
    return out


@command("hscan", -3, "readonly random", (1, 1, 1), group="hash", since="2.8.0",
         summary="Incrementally iterate hash fields and associated values",
         complexity="O(1) for every call. O(N) for a complete iteration, including enough command "
                    "calls for the cursor to return back to 0. N is the number of elements inside "
                    "the collection..")
def hscan(s: Session, args: list[bytes]):
    cursor, h, count, match = parse_scan_args(s, args, _hash)
    if h is None:
        return [b"0", []]
    if len(h) <= LISTPACK_ENTRIES:
        cursor, fields = 0, h
    else:
        cursor, fields = scan_page(s, ("hscan", s.db_index, args[1]), h, cursor, count)
    out = []
    for f in fields:
        if f in h and (match is None or match(f)):
            out.append(f)
            out.append(h[f])
    return [b"%d" % cursor, out]

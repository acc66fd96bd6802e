"""Generic key commands (Redis's db.c, expire.c, object.c): DEL, EXISTS, TYPE,
KEYS, SCAN, RANDOMKEY, RENAME, COPY, MOVE, TOUCH, the EXPIRE and TTL
families, PERSIST and OBJECT.

Every key is read through ``Session.lookup``, so a key found past its time is
first removed by an explicit ``expired`` event (lazy expiry), exactly where
Redis would expire it.

Events (their appliers are the generic ones in ``store.keyspace``):

- ``del`` per key deleted, by DEL/UNLINK and by an EXPIRE whose time has
  already passed (Redis deletes the key then, and notifies ``del`` too);
- ``expire`` {at: absolute unix ms}; ``persist``;
- ``rename_from`` {to} on the old name, then ``rename_to`` {from} on the new;
- ``move_from`` {to_db}, then ``move_to`` {from_db} in the target db;
- ``copy_to`` {from, from_db} on the destination (REPLACE overwrites).

OBJECT answers from the value itself: ENCODING is derived, not tracked (see
``string_encoding``), IDLETIME is always 0 because Fjord keeps no per-key
access clock, and FREQ fails as Redis does without an LFU policy (Fjord has
no eviction policies).
"""

from __future__ import annotations

from .. import errors
from ..cursors import CursorTable, parse_cursor
from ..glob import match_all, matcher
from ..keyspace import ENCODINGS, Db, type_name
from ..resp import OK, ReplyError
from ..session import Session, now_ms
from .args import INT64_MAX, INT64_MIN, parse_int
from .table import command, container, subcommand

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SCAN_DEFAULT_COUNT = 10
#: Redis shares one object for the integers 0..9999; OBJECT REFCOUNT shows it
SHARED_INTEGERS = 10_000
SHARED_REFCOUNT = 2**31 - 1
#: longest string Redis stores in one allocation with its header ("embstr")
EMBSTR_MAX = 44
LFU_NOT_SELECTED = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when "
    "switching between policies at runtime LRU and LFU data will take some time to adjust."
)

_DETACHED_CURSORS = CursorTable()


def _cursors(s: Session) -> CursorTable:
    return s.server.cursors if s.server is not None else _DETACHED_CURSORS


def _db_arg(s: Session, arg: bytes) -> Db:
    """A database number for MOVE and COPY ... DB, with Redis's three errors."""
    n = parse_int(arg)
    if not INT32_MIN <= n <= INT32_MAX:
        raise ReplyError(errors.INT_RANGE)
    if not 0 <= n < len(s.keyspace.dbs):
        raise ReplyError(errors.DB_INDEX)
    return s.keyspace.dbs[n]


# ------------------------------------------------------------------ existence


@command("del", -2, "write", (1, -1, 1), summary="Deletes one or more keys.", complexity="O(N)")
def del_(s: Session, args: list[bytes]):
    deleted = 0
    for key in args[1:]:
        if s.lookup(key) is not None:
            s.emit("del", key)
            deleted += 1
    return deleted


@command("unlink", -2, "write fast", (1, -1, 1), since="4.0.0",
         summary="Asynchronously deletes one or more keys.", complexity="O(1) per key")
def unlink(s: Session, args: list[bytes]):
    """Same effect as DEL: there is no background freeing to hand work to."""
    return del_(s, args)


def _count_existing(s: Session, args: list[bytes]) -> int:
    """Keys that exist, a key named twice counted twice (as Redis counts)."""
    return sum(1 for key in args[1:] if s.lookup(key) is not None)


@command("exists", -2, "readonly fast", (1, -1, 1), summary="Determines whether one or more keys exist.",
         complexity="O(N)")
def exists(s: Session, args: list[bytes]):
    return _count_existing(s, args)


@command("touch", -2, "readonly fast", (1, -1, 1), since="3.2.1",
         summary="Returns the number of existing keys out of those specified after updating the time they "
                 "were last accessed.", complexity="O(N)")
def touch(s: Session, args: list[bytes]):
    return _count_existing(s, args)


@command("type", 2, "readonly fast", (1, 1, 1), summary="Determines the type of value stored at a key.",
         complexity="O(1)")
def type_(s: Session, args: list[bytes]):
    value = s.lookup(args[1])
    return "none" if value is None else type_name(value).decode()


# ------------------------------------------------------------------ listing


def _live(s: Session, db: Db, keys) -> list[bytes]:
    """``keys`` minus those past their time (which are expired on the way)."""
    expires = db.expires
    if not expires:
        return list(keys)
    return [k for k in keys if k not in expires or s.lookup(k, db) is not None]


@command("keys", 2, "readonly", summary="Returns all key names that match a pattern.", complexity="O(N)")
def keys(s: Session, args: list[bytes]):
    db = s.db
    pattern = args[1]
    if match_all(pattern):
        candidates = list(db.data)
    else:
        match = matcher(pattern)
        candidates = [k for k in db.data if match(k)]
    return _live(s, db, candidates)


@command("scan", -2, "readonly", since="2.8.0", summary="Iterates over the key names in the database.",
         complexity="O(1) for every call. O(N) for a complete iteration.")
def scan(s: Session, args: list[bytes]):
    """SCAN over a snapshot of the database (see ``store.cursors``): each key
    present for the whole scan is returned exactly once; ``COUNT`` is the
    number of snapshot entries examined per call."""
    cursor = parse_cursor(args[1])
    count = SCAN_DEFAULT_COUNT
    pattern = wanted_type = None
    i, n = 2, len(args)
    while i < n:
        opt = args[i].upper()
        if i + 1 >= n:
            raise ReplyError(errors.SYNTAX)
        if opt == b"COUNT":
            count = parse_int(args[i + 1])
            if count < 1:
                raise ReplyError(errors.SYNTAX)
        elif opt == b"MATCH":
            pattern = args[i + 1]
        elif opt == b"TYPE":
            wanted_type = args[i + 1].lower()
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    db = s.db
    next_cursor, batch = _cursors(s).page(cursor, ("scan", db.index), lambda: list(db.data), count)
    match = None if match_all(pattern) else matcher(pattern)
    found = []
    for key in batch:
        if match is not None and not match(key):
            continue
        value = s.lookup(key, db)
        if value is None:  # deleted since the snapshot, or just expired
            continue
        if wanted_type is not None and type_name(value) != wanted_type:
            continue
        found.append(key)
    return [b"%d" % next_cursor, found]


@command("randomkey", 1, "readonly", summary="Returns a random key name from the database.",
         complexity="O(1)")
def randomkey(s: Session, args: list[bytes]):
    """A random live key, or nil.

    A dict cannot be indexed, and copying its keys on every call would make
    RANDOMKEY O(n). Instead picks come from a snapshot of the keys kept in
    the server's ``CursorTable`` and retaken after as many picks as it has
    keys (O(1) amortized; details in ``CursorTable.random_pick``). A picked
    key is checked through ``lookup``: one past its time is expired and
    another is picked, so an expired key is never returned.
    """
    db = s.db
    return _cursors(s).random_pick(("randomkey", db.index), db.data, lambda k: s.lookup(k, db) is not None)


# ------------------------------------------------------------------ renaming and copying


def _rename(s: Session, args: list[bytes], nx: bool):
    src, dst = args[1], args[2]
    if s.lookup(src) is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    if src == dst:
        return 0 if nx else OK
    if s.lookup(dst) is not None and nx:
        return 0
    s.emit("rename_from", src, {"to": dst})
    s.emit("rename_to", dst, {"from": src})
    return 1 if nx else OK


@command("rename", 3, "write", (1, 2, 1), summary="Renames a key and overwrites the destination.",
         complexity="O(1)")
def rename(s: Session, args: list[bytes]):
    return _rename(s, args, nx=False)


@command("renamenx", 3, "write fast", (1, 2, 1), summary="Renames a key only when the target key name "
         "doesn't exist.", complexity="O(1)")
def renamenx(s: Session, args: list[bytes]):
    return _rename(s, args, nx=True)


@command("copy", -3, "write denyoom", (1, 2, 1), since="6.2.0", summary="Copies the value of a key to a new key.",
         complexity="O(N) worst case for collections, where N is the number of nested items.")
def copy(s: Session, args: list[bytes]):
    src, dst = args[1], args[2]
    dst_db = s.db
    replace = False
    i, n = 3, len(args)
    while i < n:
        opt = args[i].upper()
        if opt == b"REPLACE":
            replace = True
            i += 1
        elif opt == b"DB" and i + 1 < n:
            dst_db = _db_arg(s, args[i + 1])
            i += 2
        else:
            raise ReplyError(errors.SYNTAX)
    if dst_db is s.db and src == dst:
        raise ReplyError(errors.SAME_OBJECT)
    if s.lookup(src) is None:
        return 0
    if s.lookup(dst, dst_db) is not None and not replace:
        return 0
    s.emit("copy_to", dst, {"from": src, "from_db": s.db_index}, db=dst_db.index)
    return 1


@command("move", 3, "write fast", (1, 1, 1), summary="Moves a key to another database.", complexity="O(1)")
def move(s: Session, args: list[bytes]):
    key = args[1]
    target = _db_arg(s, args[2])
    if target is s.db:
        raise ReplyError(errors.SAME_OBJECT)
    if s.lookup(key) is None or s.lookup(key, target) is not None:
        return 0
    s.emit("move_from", key, {"to_db": target.index})
    s.emit("move_to", key, {"from_db": s.db_index}, db=target.index)
    return 1


# ------------------------------------------------------------------ expiry


def _expire_options(args: list[bytes]) -> tuple[bool, bool, bool, bool]:
    nx = xx = gt = lt = False
    for opt in args[3:]:
        word = opt.upper()
        if word == b"NX":
            nx = True
        elif word == b"XX":
            xx = True
        elif word == b"GT":
            gt = True
        elif word == b"LT":
            lt = True
        else:
            raise ReplyError("ERR Unsupported option " + opt.decode("utf-8", "replace"))
    if nx and (xx or gt or lt):
        raise ReplyError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise ReplyError("ERR GT and LT options at the same time are not compatible")
    return nx, xx, gt, lt


def _expire(s: Session, args: list[bytes], name: str, in_seconds: bool, absolute: bool):
    """EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: options are checked first, then
    the time; a time already past deletes the key (reply 1, event ``del``)."""
    nx, xx, gt, lt = _expire_options(args)
    when = parse_int(args[2])
    if in_seconds:
        when *= 1000
        if not INT64_MIN <= when <= INT64_MAX:
            raise ReplyError(errors.invalid_expire_time(name))
    now = now_ms()
    base = 0 if absolute else now
    if when > INT64_MAX - base:
        raise ReplyError(errors.invalid_expire_time(name))
    when += base
    key = args[1]
    if s.lookup(key) is None:
        return 0
    current = s.db.expires.get(key)  # None: no TTL, which GT/LT treat as infinite
    if (nx and current is not None) or (xx and current is None):
        return 0
    if gt and (current is None or when <= current):
        return 0
    if lt and current is not None and when >= current:
        return 0
    if when <= now:
        s.emit("del", key)
    else:
        s.emit("expire", key, {"at": when})
    return 1


_EXPIRE_FLAGS = "write fast"


@command("expire", -3, _EXPIRE_FLAGS, (1, 1, 1), summary="Sets the expiration time of a key in seconds.",
         complexity="O(1)")
def expire(s: Session, args: list[bytes]):
    return _expire(s, args, "expire", in_seconds=True, absolute=False)


@command("pexpire", -3, _EXPIRE_FLAGS, (1, 1, 1), since="2.6.0",
         summary="Sets the expiration time of a key in milliseconds.", complexity="O(1)")
def pexpire(s: Session, args: list[bytes]):
    return _expire(s, args, "pexpire", in_seconds=False, absolute=False)


@command("expireat", -3, _EXPIRE_FLAGS, (1, 1, 1), since="1.2.0",
         summary="Sets the expiration time of a key to a Unix timestamp.", complexity="O(1)")
def expireat(s: Session, args: list[bytes]):
    return _expire(s, args, "expireat", in_seconds=True, absolute=True)


@command("pexpireat", -3, _EXPIRE_FLAGS, (1, 1, 1), since="2.6.0",
         summary="Sets the expiration time of a key to a Unix milliseconds timestamp.", complexity="O(1)")
def pexpireat(s: Session, args: list[bytes]):
    return _expire(s, args, "pexpireat", in_seconds=False, absolute=True)


def _ttl(s: Session, key: bytes, in_ms: bool, absolute: bool) -> int:
    """-2: no such key; -1: no TTL; else the time left (or the expiry time),
    seconds rounded to the nearest as Redis rounds them."""
    if s.lookup(key) is None:
        return -2
    at = s.db.expires.get(key)
    if at is None:
        return -1
    t = max(at if absolute else at - now_ms(), 0)
    return t if in_ms else (t + 500) // 1000


@command("ttl", 2, "readonly fast", (1, 1, 1), summary="Returns the expiration time in seconds of a key.",
         complexity="O(1)")
def ttl(s: Session, args: list[bytes]):
    return _ttl(s, args[1], in_ms=False, absolute=False)


@command("pttl", 2, "readonly fast", (1, 1, 1), since="2.6.0",
         summary="Returns the expiration time in milliseconds of a key.", complexity="O(1)")
def pttl(s: Session, args: list[bytes]):
    return _ttl(s, args[1], in_ms=True, absolute=False)


@command("expiretime", 2, "readonly fast", (1, 1, 1), since="7.0.0",
         summary="Returns the expiration time of a key as a Unix timestamp.", complexity="O(1)")
def expiretime(s: Session, args: list[bytes]):
    return _ttl(s, args[1], in_ms=False, absolute=True)


@command("pexpiretime", 2, "readonly fast", (1, 1, 1), since="7.0.0",
         summary="Returns the expiration time of a key as a Unix milliseconds timestamp.", complexity="O(1)")
def pexpiretime(s: Session, args: list[bytes]):
    return _ttl(s, args[1], in_ms=True, absolute=True)


@command("persist", 2, "write fast", (1, 1, 1), since="2.2.0", summary="Removes the expiration time of a key.",
         complexity="O(1)")
def persist(s: Session, args: list[bytes]):
    key = args[1]
    if s.lookup(key) is None or key not in s.db.expires:
        return 0
    s.emit("persist", key)
    return 1


# ------------------------------------------------------------------ OBJECT


def _int_encoded(value: bytes) -> bool:
    if len(value) > 20:
        return False
    try:
        parse_int(value)
    except ReplyError:
        return False
    return True


def string_encoding(value: bytes) -> bytes:
    """What Redis 7.0 reports for a string SET to ``value``: ``int`` for a
    canonical 64-bit integer, ``embstr`` up to 44 bytes, ``raw`` above.

    Derived from the value, not tracked: Redis answers ``raw`` for any string
    changed in place by APPEND or SETRANGE, whatever its length; Fjord keeps
    answering by content, so those two differ.
    """
    if _int_encoded(value):
        return b"int"
    return b"embstr" if len(value) <= EMBSTR_MAX else b"raw"


ENCODINGS.setdefault(bytes, string_encoding)

#: for value classes that register no encoding function: Redis's encoding of
#: a type once it outgrows its compact form
_ENCODING_BY_TYPE = {b"list": b"quicklist", b"hash": b"hashtable", b"set": b"hashtable",
                     b"zset": b"skiplist", b"stream": b"stream"}

OBJECT = container("object", summary="A container for object introspection commands.", since="2.2.3")


@subcommand(OBJECT, "encoding", 3, "readonly", (2, 2, 1), since="2.2.3",
            summary="Returns the internal encoding of a Redis object.", complexity="O(1)")
def object_encoding(s: Session, args: list[bytes]):
    value = s.lookup(args[2])
    if value is None:
        return None
    encode = ENCODINGS.get(type(value))
    if encode is not None:
        return encode(value)
    return _ENCODING_BY_TYPE.get(type_name(value), b"raw")


@subcommand(OBJECT, "freq", 3, "readonly", (2, 2, 1), since="4.0.0",
            summary="Returns the logarithmic access frequency counter of a Redis object.", complexity="O(1)")
def object_freq(s: Session, args: list[bytes]):
    if s.lookup(args[2]) is None:
        return None
    raise ReplyError(LFU_NOT_SELECTED)


@subcommand(OBJECT, "idletime", 3, "readonly", (2, 2, 1), since="2.2.3",
            summary="Returns the time since the last access to a Redis object.", complexity="O(1)")
def object_idletime(s: Session, args: list[bytes]):
    """Always 0: Fjord keeps no per-key access clock (it would cost a write
    on every read, and nothing evicts by it)."""
    if s.lookup(args[2]) is None:
        return None
    return 0


@subcommand(OBJECT, "refcount", 3, "readonly", (2, 2, 1), since="2.2.3",
            summary="Returns the reference count of a value of a key.", complexity="O(1)")
def object_refcount(s: Session, args: list[bytes]):
    value = s.lookup(args[2])
    if value is None:
        return None
    if type(value) is bytes and _int_encoded(value) and 0 <= int(value) < SHARED_INTEGERS:
        return SHARED_REFCOUNT
    return 1


_OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]


@subcommand(OBJECT, "help", 2, "loading stale", since="6.2.0", summary="Returns helpful text about the different "
            "subcommands.", complexity="O(1)")
def object_help(s: Session, args: list[bytes]):
    return list(_OBJECT_HELP)

"""String commands (Redis's t_string.c) and the appliers of string events.

Events: ``set`` {value, expire_at, keepttl: true when KEEPTTL kept the key's
expire_at (keyspace notifications tell that from SET EX)}, ``incrby``/``incrbyfloat`` {value: the
result}, ``append`` {value: the suffix}, ``setrange`` {offset, value}. Every
expiry in an event is absolute unix milliseconds, never relative. GETDEL logs
``del``; GETEX logs ``expire`` {at}, ``persist``, or ``del`` when its EXAT/PXAT
time has already passed (as Redis does).

Each handler checks in Redis's order (syntax, then key type, then values), so
a command that fails in several ways reports the same error Redis does.
"""

from __future__ import annotations

from streams.events import Event

from .. import errors, longdouble
from ..keyspace import Keyspace, applies
from ..lcs import LcsTable, lcs_length
from ..resp import OK, ReplyError, RespMap
from ..session import Session, now_ms
from .args import INT64_MAX, INT64_MIN, parse_int
from .table import command

DEFAULT_MAX_BULK = 512 * 1024 * 1024

# ------------------------------------------------------------------ appliers


@applies("set")
def _apply_set(ks: Keyspace, e: Event) -> None:
    _, index, key, data = e  # one unpack: NamedTuple attribute reads cost a lookup each
    db = ks.dbs[index]
    db.data[key] = data["value"]
    at = data.get("expire_at")
    if at is None:
        if db.expires:
            db.expires.pop(key, None)
    else:
        db.expires[key] = at


@applies("incrby", "incrbyfloat")
def _apply_new_number(ks: Keyspace, e: Event) -> None:
    """The counter's new value; its TTL stays as it was."""
    ks.dbs[e.db].data[e.key] = e.data["value"]


@applies("append")
def _apply_append(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    data[e.key] = data.get(e.key, b"") + e.data["value"]


@applies("setrange")
def _apply_setrange(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    old = data.get(e.key, b"")
    offset, value = e.data["offset"], e.data["value"]
    if len(old) < offset:
        old += bytes(offset - len(old))
    data[e.key] = old[:offset] + value + old[offset + len(value):]


# ------------------------------------------------------------------ helpers


def _max_bulk(s: Session) -> int:
    return s.server.config["proto-max-bulk-len"] if s.server is not None else DEFAULT_MAX_BULK


def _check_length(s: Session, total: int) -> None:
    if total > _max_bulk(s):
        raise ReplyError(errors.STRING_TOO_LONG)


# SET / GETEX option bits
NX, XX, GET, KEEPTTL, PERSIST = 1, 2, 4, 8, 16
EX, PX, EXAT, PXAT = 32, 64, 128, 256
_TIMES = EX | PX | EXAT | PXAT
_TIME_FLAGS = {b"EX": EX, b"PX": PX, b"EXAT": EXAT, b"PXAT": PXAT}


def _parse_options(args: list[bytes], start: int, for_set: bool) -> tuple[int, bytes | None]:
    """SET's or GETEX's options as (flag bits, expire argument or None).

    Only the words are checked here; the number is read afterwards, so
    ``SET k v EX abc NX XX`` is a syntax error as in Redis. A time option may
    repeat (the last one counts) but never mixes with another unit."""
    flags = 0
    expire = None
    i, n = start, len(args)
    while i < n:
        opt = args[i].upper()
        if opt == b"NX" and for_set and not flags & XX:
            flags |= NX
        elif opt == b"XX" and for_set and not flags & NX:
            flags |= XX
        elif opt == b"GET" and for_set:
            flags |= GET
        elif opt == b"KEEPTTL" and for_set and not flags & _TIMES:
            flags |= KEEPTTL
        elif opt == b"PERSIST" and not for_set and not flags & _TIMES:
            flags |= PERSIST
        elif (bit := _TIME_FLAGS.get(opt)) and not flags & (KEEPTTL | PERSIST | (_TIMES & ~bit)) and i + 1 < n:
            flags |= bit
            i += 1
            expire = args[i]
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    return flags, expire


def _expire_at(raw: bytes, flags: int, cmdname: str) -> int:
    """Absolute unix ms for an EX/PX/EXAT/PXAT argument, with Redis's checks."""
    n = parse_int(raw)
    seconds = flags & (EX | EXAT)
    if n <= 0 or (seconds and n > INT64_MAX // 1000):
        raise ReplyError(errors.invalid_expire_time(cmdname))
    if seconds:
        n *= 1000
    if flags & (EX | PX):
        n += now_ms()
        if n > INT64_MAX:
            raise ReplyError(errors.invalid_expire_time(cmdname))
    return n


# ------------------------------------------------------------------ get / set


@command("get", 2, "readonly fast", (1, 1, 1), group="string", summary="Get the value of a key",
         complexity="O(1)")
def get(s: Session, args: list[bytes]):
    return s.lookup_string(args[1])


@command("set", -3, "write denyoom", (1, 1, 1), group="string", summary="Set the string value of a key",
         complexity="O(1)")
def set_(s: Session, args: list[bytes]):
    key, value = args[1], args[2]
    if len(args) == 3:
        s.emit("set", key, {"value": value, "expire_at": None})
        return OK
    flags, raw = _parse_options(args, 3, True)
    expire_at = None if raw is None else _expire_at(raw, flags, "set")
    old = s.lookup_string(key) if flags & GET else s.lookup(key)
    if (flags & NX and old is not None) or (flags & XX and old is None):
        return old if flags & GET else None
    if flags & KEEPTTL and old is not None:
        expire_at = s.db.expires.get(key)
        if expire_at is not None:  # kept, not set: Redis notifies no "expire" for it
            s.emit("set", key, {"value": value, "expire_at": expire_at, "keepttl": True})
            return old if flags & GET else OK
    s.emit("set", key, {"value": value, "expire_at": expire_at})
    return old if flags & GET else OK


@command("setnx", 3, "write denyoom fast", (1, 1, 1), group="string",
         summary="Set the value of a key, only if the key does not exist", complexity="O(1)")
def setnx(s: Session, args: list[bytes]):
    if s.lookup(args[1]) is not None:
        return 0
    s.emit("set", args[1], {"value": args[2], "expire_at": None})
    return 1


def _set_with_ttl(s: Session, args: list[bytes], unit: int, cmdname: str):
    expire_at = _expire_at(args[2], unit, cmdname)
    s.emit("set", args[1], {"value": args[3], "expire_at": expire_at})
    return OK


@command("setex", 4, "write denyoom", (1, 1, 1), group="string", since="2.0.0",
         summary="Set the value and expiration of a key", complexity="O(1)")
def setex(s: Session, args: list[bytes]):
    return _set_with_ttl(s, args, EX, "setex")


@command("psetex", 4, "write denyoom", (1, 1, 1), group="string", since="2.6.0",
         summary="Set the value and expiration in milliseconds of a key", complexity="O(1)")
def psetex(s: Session, args: list[bytes]):
    return _set_with_ttl(s, args, PX, "psetex")


@command("getset", 3, "write denyoom fast", (1, 1, 1), group="string",
         summary="Set the string value of a key and return its old value", complexity="O(1)")
def getset(s: Session, args: list[bytes]):
    old = s.lookup_string(args[1])
    s.emit("set", args[1], {"value": args[2], "expire_at": None})
    return old


@command("getdel", 2, "write fast", (1, 1, 1), group="string", since="6.2.0",
         summary="Get the value of a key and delete the key", complexity="O(1)")
def getdel(s: Session, args: list[bytes]):
    old = s.lookup_string(args[1])
    if old is not None:
        s.emit("del", args[1])
    return old


@command("getex", -2, "write fast", (1, 1, 1), group="string", since="6.2.0",
         summary="Get the value of a key and optionally set its expiration", complexity="O(1)")
def getex(s: Session, args: list[bytes]):
    flags, raw = _parse_options(args, 2, False)
    key = args[1]
    value = s.lookup_string(key)
    if value is None:
        return None
    if raw is not None:
        at = _expire_at(raw, flags, "getex")
        if flags & (EXAT | PXAT) and at <= now_ms():
            s.emit("del", key)  # an absolute time already past deletes, as in Redis
        else:
            s.emit("expire", key, {"at": at})
    elif flags & PERSIST and key in s.db.expires:
        s.emit("persist", key)
    return value


# ------------------------------------------------------------------ multi-key


@command("mget", -2, "readonly fast", (1, -1, 1), group="string",
         summary="Get the values of all the given keys",
         complexity="O(N) where N is the number of keys to retrieve.")
def mget(s: Session, args: list[bytes]):
    lookup = s.lookup
    out = []
    for key in args[1:]:
        v = lookup(key)
        out.append(v if type(v) is bytes else None)
    return out


def _set_pairs(s: Session, args: list[bytes]) -> None:
    for i in range(1, len(args), 2):
        s.emit("set", args[i], {"value": args[i + 1], "expire_at": None})


@command("mset", -3, "write denyoom", (1, -1, 2), group="string", since="1.0.1",
         summary="Set multiple keys to multiple values",
         complexity="O(N) where N is the number of keys to set.")
def mset(s: Session, args: list[bytes]):
    if len(args) % 2 == 0:
        raise ReplyError(errors.wrong_arity("mset"))
    _set_pairs(s, args)
    return OK


@command("msetnx", -3, "write denyoom", (1, -1, 2), group="string", since="1.0.1",
         summary="Set multiple keys to multiple values, only if none of the keys exist",
         complexity="O(N) where N is the number of keys to set.")
def msetnx(s: Session, args: list[bytes]):
    if len(args) % 2 == 0:
        raise ReplyError(errors.wrong_arity("msetnx"))
    for i in range(1, len(args), 2):
        if s.lookup(args[i]) is not None:
            return 0
    _set_pairs(s, args)
    return 1


# ------------------------------------------------------------------ counters


def _incr(s: Session, key: bytes, by: int) -> int:
    v = s.lookup(key)
    if v is None:
        n = by
    elif type(v) is not bytes:
        raise ReplyError(errors.WRONGTYPE)
    else:
        # Common case first: plain digits, no leading zero, too short to overflow.
        if v.isdigit() and len(v) < 19 and (v[0] != 0x30 or len(v) == 1):
            n = int(v) + by
        else:
            n = parse_int(v) + by
        if n > INT64_MAX or n < INT64_MIN:
            raise ReplyError(errors.OVERFLOW)
    s.emit("incrby", key, {"value": b"%d" % n})
    return n


@command("incr", 2, "write denyoom fast", (1, 1, 1), group="string",
         summary="Increment the integer value of a key by one", complexity="O(1)")
def incr(s: Session, args: list[bytes]):
    return _incr(s, args[1], 1)


@command("decr", 2, "write denyoom fast", (1, 1, 1), group="string",
         summary="Decrement the integer value of a key by one", complexity="O(1)")
def decr(s: Session, args: list[bytes]):
    return _incr(s, args[1], -1)


@command("incrby", 3, "write denyoom fast", (1, 1, 1), group="string",
         summary="Increment the integer value of a key by the given amount", complexity="O(1)")
def incrby(s: Session, args: list[bytes]):
    return _incr(s, args[1], parse_int(args[2]))


@command("decrby", 3, "write denyoom fast", (1, 1, 1), group="string",
         summary="Decrement the integer value of a key by the given number", complexity="O(1)")
def decrby(s: Session, args: list[bytes]):
    by = parse_int(args[2])
    if by == INT64_MIN:
        raise ReplyError(errors.DECREMENT_OVERFLOW)
    return _incr(s, args[1], -by)


@command("incrbyfloat", 3, "write denyoom fast", (1, 1, 1), group="string", since="2.6.0",
         summary="Increment the float value of a key by the given amount", complexity="O(1)")
def incrbyfloat(s: Session, args: list[bytes]):
    key = args[1]
    old = s.lookup_string(key)
    current = longdouble.parse(old) if old is not None else 0
    if current is None:
        raise ReplyError(errors.NOT_FLOAT)
    by = longdouble.parse(args[2])
    if by is None:
        raise ReplyError(errors.NOT_FLOAT)
    total = longdouble.add(current, by)
    if total is None:
        raise ReplyError(errors.NAN_OR_INFINITY)
    value = longdouble.format_human(total)
    s.emit("incrbyfloat", key, {"value": value})
    return value


# ------------------------------------------------------------------ ranges


@command("append", 3, "write denyoom fast", (1, 1, 1), group="string", since="2.0.0",
         summary="Append a value to a key",
         complexity="O(1). The amortized time complexity is O(1) assuming the appended value is small and "
                    "the already present value is of any size, since the dynamic string library used by Redis "
                    "will double the free space available on every reallocation.")
def append(s: Session, args: list[bytes]):
    key, suffix = args[1], args[2]
    old = s.lookup_string(key)
    total = len(suffix) if old is None else len(old) + len(suffix)
    if old is not None:
        _check_length(s, total)
    s.emit("append", key, {"value": suffix})
    return total


@command("strlen", 2, "readonly fast", (1, 1, 1), group="string", since="2.2.0",
         summary="Get the length of the value stored in a key", complexity="O(1)")
def strlen(s: Session, args: list[bytes]):
    v = s.lookup_string(args[1])
    return 0 if v is None else len(v)


_RANGE_COMPLEXITY = (
    "O(N) where N is the length of the returned string. The complexity is ultimately determined by the "
    "returned length, but because creating a substring from an existing string is very cheap, it can be "
    "considered O(1) for small strings.")


def _getrange(s: Session, args: list[bytes]) -> bytes:
    start, end = parse_int(args[2]), parse_int(args[3])
    v = s.lookup_string(args[1])
    if not v:
        return b""
    if start < 0 and end < 0 and start > end:
        return b""
    n = len(v)
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    if end >= n:
        end = n - 1
    return b"" if start > end else v[start:end + 1]


@command("getrange", 4, "readonly", (1, 1, 1), group="string", since="2.4.0",
         summary="Get a substring of the string stored at a key", complexity=_RANGE_COMPLEXITY)
def getrange(s: Session, args: list[bytes]):
    return _getrange(s, args)


@command("substr", 4, "readonly", (1, 1, 1), group="string",
         summary="Get a substring of the string stored at a key", complexity=_RANGE_COMPLEXITY)
def substr(s: Session, args: list[bytes]):
    return _getrange(s, args)


@command("setrange", 4, "write denyoom", (1, 1, 1), group="string", since="2.2.0",
         summary="Overwrite part of a string at key starting at the specified offset",
         complexity="O(1), not counting the time taken to copy the new string in place. Usually, this string "
                    "is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M "
                    "being the length of the value argument.")
def setrange(s: Session, args: list[bytes]):
    key, value = args[1], args[3]
    offset = parse_int(args[2])
    if offset < 0:
        raise ReplyError(errors.OFFSET_OUT_OF_RANGE)
    old = s.lookup_string(key)
    oldlen = 0 if old is None else len(old)
    if not value:  # writing nothing creates nothing and cannot overflow
        return oldlen
    _check_length(s, offset + len(value))
    s.emit("setrange", key, {"offset": offset, "value": value})
    return max(oldlen, offset + len(value))


# ------------------------------------------------------------------ LCS

LCS_NOT_STRINGS = "ERR The specified keys must contain string values"
LCS_LEN_AND_IDX = "ERR If you want both the length and indexes, please just use IDX."
LCS_TOO_BIG = "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"


@command("lcs", -3, "readonly", (1, 2, 1), group="string", since="7.0.0",
         summary="Find longest common substring",
         complexity="O(N*M) where N and M are the lengths of s1 and s2, respectively")
def lcs(s: Session, args: list[bytes]):
    a, b = s.lookup(args[1]), s.lookup(args[2])
    if (a is not None and type(a) is not bytes) or (b is not None and type(b) is not bytes):
        raise ReplyError(LCS_NOT_STRINGS)
    a, b = a or b"", b or b""
    want_len = want_idx = with_match_len = False
    min_match_len = 0
    i = 3
    while i < len(args):
        opt = args[i].upper()
        if opt == b"IDX":
            want_idx = True
        elif opt == b"LEN":
            want_len = True
        elif opt == b"WITHMATCHLEN":
            with_match_len = True
        elif opt == b"MINMATCHLEN" and i + 1 < len(args):
            i += 1
            min_match_len = max(parse_int(args[i]), 0)
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    if want_len and want_idx:
        raise ReplyError(LCS_LEN_AND_IDX)
    # Redis's limit on its DP table (4-byte cells); Fjord's packed table is
    # 32 times smaller, but the same inputs are refused.
    if (len(a) + 1) * (len(b) + 1) * 4 > _max_bulk(s):
        raise ReplyError(LCS_TOO_BIG)
    if want_len:
        return lcs_length(a, b)
    common, ranges = LcsTable(a, b).walk(min_match_len)
    if not want_idx:
        return common
    matches = []
    for a_start, a_end, b_start, b_end in ranges:
        m = [[a_start, a_end], [b_start, b_end]]
        if with_match_len:
            m.append(a_end - a_start + 1)
        matches.append(m)
    return RespMap([(b"matches", matches), (b"len", len(common))])

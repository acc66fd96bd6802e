"""Set commands (Redis's t_set.c), the appliers of set events, and the
collection helpers hashes share (SCAN paging, random picks, counts).

A set is a ``SetValue``: a Python set of bytes members.

Events (Redis keyspace-notification names, effects only):

- ``sadd`` {members: [...]}: only members that were not there yet
- ``srem`` {members: [...]}: only members that were there
- ``spop`` {members: [...]}: the members SPOP chose at random (recorded, so
  replay does not choose again)
- ``sinterstore`` / ``sunionstore`` / ``sdiffstore`` {members: [...]}: the
  destination is replaced by a set of exactly these members (any old value
  and TTL of the key go); an empty result is a ``del`` of the destination
  instead (none if it did not exist)
- SMOVE writes ``srem`` on the source then ``sadd`` on the destination.

An applier that leaves a set empty deletes the key (Redis never keeps an empty
collection), so no separate ``del`` event is written for that.

Reply order: Redis keeps a small all-integer set as a sorted *intset*, so it
lists such sets in numeric order; ``ordered`` does the same for sets of up to
512 integers. Other sets come out in Python's hash order (Redis uses its own
hash order; compare those as unordered). SSCAN returns a set of up to 512
members in one call with cursor 0 (as Redis does for an intset); larger sets
are paged from snapshots in the server's ``CursorTable`` (``store.cursors``),
like SCAN.
"""

from __future__ import annotations

import random
import re
from itertools import islice

from streams.events import Event

from .. import errors
from ..cursors import CursorTable, parse_cursor
from ..glob import match_all, matcher
from ..keyspace import COPIERS, ENCODINGS, TYPE_NAMES, Keyspace, applies
from ..resp import ReplyError, RespSet
from ..session import Session
from .args import INT64_MAX, INT64_MIN, ArgCursor, parse_int
from .table import command


class SetValue(set):
    """A set of bytes members. A class of its own so TYPE and type checks
    tell it from any other set-based value."""

    __slots__ = ()


#: up to this size an all-integer set is an intset in Redis: sorted replies,
#: and SSCAN returns it whole in one call (set-max-intset-entries)
INTSET_MAX = 512
#: SRANDMEMBER with a negative count repeats members; bound the reply size
MAX_RANDOM_REPLY = 1 << 24
#: random picks from a collection up to this size walk it; larger ones
#: sample a snapshot kept in the server's CursorTable (amortized O(1))
WALK_FOR_RANDOM = 1024


def _encoding(st: SetValue) -> bytes:
    return b"intset" if _is_intset(st) else b"hashtable"


TYPE_NAMES[SetValue] = b"set"
COPIERS[SetValue] = SetValue  # members are immutable bytes
ENCODINGS[SetValue] = _encoding

# ------------------------------------------------------------------ appliers


@applies("sadd")
def _apply_sadd(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    st = data.get(e.key)
    if st is None:
        data[e.key] = SetValue(e.data["members"])
    else:
        st.update(e.data["members"])


@applies("srem", "spop")
def _apply_srem(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    st = db.data[e.key]
    st.difference_update(e.data["members"])
    if not st:
        db.remove(e.key)


@applies("sinterstore", "sunionstore", "sdiffstore")
def _apply_store(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    db.expires.pop(e.key, None)
    if e.data["members"]:
        db.data[e.key] = SetValue(e.data["members"])
    else:
        db.data.pop(e.key, None)


# ------------------------------------------------------------------ helpers

_CANON_INT = re.compile(rb"(?:-?[1-9][0-9]{0,18}|0)\Z")


def _is_intset(members) -> bool:
    """Whether Redis would hold these members as an intset: at most 512
    canonical 64-bit integers."""
    if len(members) > INTSET_MAX:
        return False
    match = _CANON_INT.match
    for m in members:
        if match(m) is None or (len(m) >= 19 and not INT64_MIN <= int(m) <= INT64_MAX):
            return False
    return True


def ordered(members) -> list:
    """All of ``members`` in the order Redis would list them (see module doc)."""
    if _is_intset(members):
        return sorted(members, key=int)
    return list(members)


_DETACHED_CURSORS = CursorTable()  # for sessions without a server (direct handler calls)


def _cursor_table(s: Session) -> CursorTable:
    return s.server.cursors if s.server is not None else _DETACHED_CURSORS


def _always(_member) -> bool:
    return True


def random_member(s: Session, owner: tuple, coll):
    """One member (or field) of a non-empty set or dict, at random.

    A set cannot be indexed, so a small one is walked to a random position;
    a large one is sampled from a snapshot of its members in the server's
    ``CursorTable`` (``owner`` names it), retaken as the collection changes,
    so SPOP in a loop on a big set stays cheap.
    """
    if len(coll) <= WALK_FOR_RANDOM:
        return next(islice(coll, random.randrange(len(coll)), None))
    return _cursor_table(s).random_pick(owner, coll, _always)


def random_members(s: Session, owner: tuple, coll, count: int, distinct: bool) -> list:
    """``count`` random members (or fields): all different when ``distinct``
    (then ``count`` < len(coll)), else drawn with repeats."""
    if len(coll) <= WALK_FOR_RANDOM or count * 4 > len(coll):
        pool = list(coll)
        return random.sample(pool, count) if distinct else random.choices(pool, k=count)
    table = _cursor_table(s)
    if not distinct:
        return [table.random_pick(owner, coll, _always) for _ in range(count)]
    chosen: dict = {}
    while len(chosen) < count:
        chosen[table.random_pick(owner, coll, _always)] = None
    return list(chosen)


def parse_count(b: bytes) -> int:
    """SRANDMEMBER/HRANDFIELD's count: any 64-bit integer but the lowest."""
    n = parse_int(b)
    if n == INT64_MIN:
        raise ReplyError(errors.out_of_range_between(-INT64_MAX, INT64_MAX))
    return n


def _set(s: Session, key: bytes) -> SetValue | None:
    """The set at ``key``, None if absent; WRONGTYPE for any other type."""
    st = s.lookup(key)
    if st is not None and type(st) is not SetValue:
        raise ReplyError(errors.WRONGTYPE)
    return st


def _sets(s: Session, keys: list[bytes]) -> list[SetValue | None]:
    """Every key's set (None when absent); WRONGTYPE if any is not a set."""
    return [_set(s, k) for k in keys]


# ------------------------------------------------------------------ scanning


def parse_scan_args(s: Session, args: list[bytes], getter):
    """HSCAN/SSCAN's ``key cursor [MATCH p] [COUNT n]``, checked in Redis's
    order: cursor, then key type, then (only for an existing key) options.
    Returns (cursor, collection or None, count, match predicate or None)."""
    cursor = parse_cursor(args[2])
    coll = getter(s, args[1])
    count, match = 10, None
    if coll is not None:
        cur = ArgCursor(args, 3)
        while cur:
            opt = cur.next_upper()
            if opt == b"COUNT":
                count = cur.next_int()
                if count < 1:
                    raise ReplyError(errors.SYNTAX)
            elif opt == b"MATCH":
                pattern = cur.next()
                match = None if match_all(pattern) else matcher(pattern)
            else:
                raise ReplyError(errors.SYNTAX)
    return cursor, coll, count, match


def scan_page(s: Session, owner: tuple, coll, cursor: int, count: int) -> tuple[int, list]:
    """One page of a large collection and the next cursor, from a snapshot
    in the server's ``CursorTable`` (see ``store.cursors``). Entries removed
    since the snapshot are still in the page: callers filter them."""
    return _cursor_table(s).page(cursor, owner, lambda: list(coll), count)


# ------------------------------------------------------------------ writes


@command("sadd", -3, "write denyoom fast", (1, 1, 1), group="set", since="1.0.0",
         summary="Add one or more members to a set",
         complexity="O(1) for each element added, so O(N) to add N elements when the command is "
                    "called with multiple arguments.")
def sadd(s: Session, args: list[bytes]):
    key = args[1]
    st = s.lookup(key)
    if st is None:
        members = [args[2]] if len(args) == 3 else list(dict.fromkeys(args[2:]))
    else:
        if type(st) is not SetValue:
            raise ReplyError(errors.WRONGTYPE)
        if len(args) == 3:
            if args[2] in st:
                return 0
            members = [args[2]]
        else:
            members = [m for m in dict.fromkeys(args[2:]) if m not in st]
            if not members:
                return 0
    s.emit("sadd", key, {"members": members})
    return len(members)


@command("srem", -3, "write fast", (1, 1, 1), group="set", since="1.0.0",
         summary="Remove one or more members from a set",
         complexity="O(N) where N is the number of members to be removed.")
def srem(s: Session, args: list[bytes]):
    st = _set(s, args[1])
    if st is None:
        return 0
    gone = [m for m in dict.fromkeys(args[2:]) if m in st]
    if gone:
        s.emit("srem", args[1], {"members": gone})
    return len(gone)


@command("spop", -2, "write fast random", (1, 1, 1), group="set", since="1.0.0",
         summary="Remove and return one or multiple random members from a set",
         complexity="Without the count argument O(1), otherwise O(N) where N is the value of the "
                    "passed count.")
def spop(s: Session, args: list[bytes]):
    if len(args) > 3:
        raise ReplyError(errors.SYNTAX)
    if len(args) == 2:
        st = _set(s, args[1])
        if st is None:
            return None
        member = random_member(s, ("set", s.db_index, args[1]), st)
        s.emit("spop", args[1], {"members": [member]})
        return member
    count = parse_int(args[2], errors.OUT_OF_RANGE_POSITIVE)
    if count < 0:
        raise ReplyError(errors.OUT_OF_RANGE_POSITIVE)
    st = _set(s, args[1])
    if st is None or count == 0:
        return RespSet()
    if count >= len(st):
        chosen = ordered(st)
    else:
        chosen = random_members(s, ("set", s.db_index, args[1]), st, count, distinct=True)
    s.emit("spop", args[1], {"members": chosen})
    return RespSet(chosen)


@command("smove", 4, "write fast", (1, 2, 1), group="set", since="1.0.0",
         summary="Move a member from one set to another", complexity="O(1)")
def smove(s: Session, args: list[bytes]):
    src_key, dst_key, member = args[1], args[2], args[3]
    src = _set(s, src_key)
    if src is None:
        return 0
    dst = _set(s, dst_key)
    if member not in src:
        return 0
    if src_key == dst_key:
        return 1
    s.emit("srem", src_key, {"members": [member]})
    if dst is None or member not in dst:
        s.emit("sadd", dst_key, {"members": [member]})
    return 1


def _inter(sets: list) -> set:
    if not sets or any(st is None for st in sets):
        return set()
    sets = sorted(sets, key=len)
    return sets[0].intersection(*sets[1:])


def _union(sets: list) -> set:
    return set().union(*[st for st in sets if st is not None])


def _diff(sets: list) -> set:
    if sets[0] is None:
        return set()
    return sets[0].difference(*[st for st in sets[1:] if st is not None])


def _store(s: Session, args: list[bytes], event: str, compute) -> int:
    result = compute(_sets(s, args[2:]))
    dest = args[1]
    if result:
        s.emit(event, dest, {"members": list(result)})
    elif s.lookup(dest) is not None:
        s.emit("del", dest)
    return len(result)


@command("sinterstore", -3, "write denyoom", (1, -1, 1), group="set", since="1.0.0",
         summary="Intersect multiple sets and store the resulting set in a key",
         complexity="O(N*M) worst case where N is the cardinality of the smallest set and M is "
                    "the number of sets.")
def sinterstore(s: Session, args: list[bytes]):
    return _store(s, args, "sinterstore", _inter)


@command("sunionstore", -3, "write denyoom", (1, -1, 1), group="set", since="1.0.0",
         summary="Add multiple sets and store the resulting set in a key",
         complexity="O(N) where N is the total number of elements in all given sets.")
def sunionstore(s: Session, args: list[bytes]):
    return _store(s, args, "sunionstore", _union)


@command("sdiffstore", -3, "write denyoom", (1, -1, 1), group="set", since="1.0.0",
         summary="Subtract multiple sets and store the resulting set in a key",
         complexity="O(N) where N is the total number of elements in all given sets.")
def sdiffstore(s: Session, args: list[bytes]):
    return _store(s, args, "sdiffstore", _diff)


# ------------------------------------------------------------------ reads


@command("smembers", 2, "readonly", (1, 1, 1), group="set", since="1.0.0",
         summary="Get all the members in a set", complexity="O(N) where N is the set cardinality.")
def smembers(s: Session, args: list[bytes]):
    st = _set(s, args[1])
    return RespSet(ordered(st)) if st is not None else RespSet()


@command("sismember", 3, "readonly fast", (1, 1, 1), group="set", since="1.0.0",
         summary="Determine if a given value is a member of a set", complexity="O(1)")
def sismember(s: Session, args: list[bytes]):
    st = _set(s, args[1])
    return 1 if st is not None and args[2] in st else 0


@command("smismember", -3, "readonly fast", (1, 1, 1), group="set", since="6.2.0",
         summary="Returns the membership associated with the given elements for a set",
         complexity="O(N) where N is the number of elements being checked for membership")
def smismember(s: Session, args: list[bytes]):
    st = _set(s, args[1])
    if st is None:
        return [0] * (len(args) - 2)
    return [1 if m in st else 0 for m in args[2:]]


@command("scard", 2, "readonly fast", (1, 1, 1), group="set", since="1.0.0",
         summary="Get the number of members in a set", complexity="O(1)")
def scard(s: Session, args: list[bytes]):
    st = _set(s, args[1])
    return len(st) if st is not None else 0


@command("srandmember", -2, "readonly random", (1, 1, 1), group="set", since="1.0.0",
         summary="Get one or multiple random members from a set",
         complexity="Without the count argument O(1), otherwise O(N) where N is the absolute value "
                    "of the passed count.")
def srandmember(s: Session, args: list[bytes]):
    if len(args) > 3:
        raise ReplyError(errors.SYNTAX)
    if len(args) == 2:
        st = _set(s, args[1])
        return random_member(s, ("set", s.db_index, args[1]), st) if st is not None else None
    count = parse_count(args[2])
    st = _set(s, args[1])
    if st is None or count == 0:
        return []
    if count >= len(st):
        return ordered(st)
    if count < -MAX_RANDOM_REPLY:
        raise ReplyError(errors.OUT_OF_RANGE)
    return random_members(s, ("set", s.db_index, args[1]), st, abs(count), distinct=count > 0)


@command("sinter", -2, "readonly", (1, -1, 1), group="set", since="1.0.0",
         summary="Intersect multiple sets",
         complexity="O(N*M) worst case where N is the cardinality of the smallest set and M is "
                    "the number of sets.")
def sinter(s: Session, args: list[bytes]):
    return RespSet(ordered(_inter(_sets(s, args[1:]))))


@command("sunion", -2, "readonly", (1, -1, 1), group="set", since="1.0.0",
         summary="Add multiple sets",
         complexity="O(N) where N is the total number of elements in all given sets.")
def sunion(s: Session, args: list[bytes]):
    return RespSet(ordered(_union(_sets(s, args[1:]))))


@command("sdiff", -2, "readonly", (1, -1, 1), group="set", since="1.0.0",
         summary="Subtract multiple sets",
         complexity="O(N) where N is the total number of elements in all given sets.")
def sdiff(s: Session, args: list[bytes]):
    return RespSet(ordered(_diff(_sets(s, args[1:]))))


@command("sintercard", -3, "readonly movablekeys", (0, 0, 0), group="set", since="7.0.0", numkeys=1,
         summary="Intersect multiple sets and return the cardinality of the result",
         complexity="O(N*M) worst case where N is the cardinality of the smallest set and M is "
                    "the number of sets.")
def sintercard(s: Session, args: list[bytes]):
    numkeys = parse_int(args[1], errors.NUMKEYS_POSITIVE)
    if numkeys <= 0:
        raise ReplyError(errors.NUMKEYS_POSITIVE)
    if numkeys > len(args) - 2:
        raise ReplyError(errors.NUMKEYS_TOO_MANY)
    limit = 0
    cur = ArgCursor(args, 2 + numkeys)
    while cur:
        if cur.next_upper() != b"LIMIT":
            raise ReplyError(errors.SYNTAX)
        limit = cur.next_int(errors.LIMIT_NEGATIVE)
        if limit < 0:
            raise ReplyError(errors.LIMIT_NEGATIVE)
    sets = _sets(s, args[2:2 + numkeys])
    if any(st is None for st in sets):
        return 0
    if not limit:
        return len(_inter(sets))
    sets.sort(key=len)
    others = sets[1:]
    n = 0
    for m in sets[0]:
        for other in others:
            if m not in other:
                break
        else:
            n += 1
            if n >= limit:
                break
    return n


@command("sscan", -3, "readonly random", (1, 1, 1), group="set", since="2.8.0",
         summary="Incrementally iterate Set elements",
         complexity="O(1) for every call. O(N) for a complete iteration, including enough command "
                    "calls for the cursor to return back to 0. N is the number of elements inside "
                    "the collection..")
def sscan(s: Session, args: list[bytes]):
    cursor, st, count, match = parse_scan_args(s, args, _set)
    if st is None:
        return [b"0", []]
    if len(st) <= INTSET_MAX:
        cursor, members = 0, ordered(st)
    else:
        cursor, page = scan_page(s, ("sscan", s.db_index, args[1]), st, cursor, count)
        members = [m for m in page if m in st]
    if match is not None:
        members = [m for m in members if match(m)]
    return [b"%d" % cursor, members]

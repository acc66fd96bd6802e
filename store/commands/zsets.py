"""Sorted set commands (Redis's t_zset.c) and the appliers of zset events.

The value is ``store.zset.ZSet``; the set algebra (ZUNION, ZINTER, ZDIFF and
their STORE forms) lives in ``zsetalgebra``. Replies match redis-server 7.0 byte for
byte: scores print with ``%.17g``, RESP3 sends them as doubles and nests
WITHSCORES pairs (``[[member, score], ...]``), RESP2 flattens them.

Events (Redis keyspace-notification names; effects only; every score is a
string in Redis's ``%.17g`` form, ``inf``/``-inf`` included, so it round-trips):

- ``zadd`` {members: [[score, member], ...]}: ZADD; the resulting scores of
  the members it added or changed, nothing for ignored ones
- ``zincr`` {members: [[score, member]]}: ZINCRBY and ZADD INCR, with the
  *resulting* score, never the increment
- ``zrem`` {members: [member, ...]}: ZREM, only members that existed
- ``zremrangebyscore`` / ``zremrangebyrank`` / ``zremrangebylex``
  {members: [member, ...]}: Redis's names, carrying the members the range
  matched (the effect), so replay never re-evaluates a range
- ``zpopmin`` / ``zpopmax`` {members: [member, ...]}: ZPOPMIN/ZPOPMAX/ZMPOP
  (and the blocking variants, through ``pop``)
- ``zunionstore`` / ``zinterstore`` / ``zdiffstore`` / ``zrangestore``
  {members: [[score, member], ...]}: "the destination is now exactly these
  members" (any old value and TTL gone); an empty result is a ``del`` of the
  destination, written only if it existed

An applier that leaves a sorted set empty deletes the key (Redis never keeps
an empty collection), so no separate ``del`` event is written for it.
"""

from __future__ import annotations

import math
import random

from streams.events import Event

from .. import errors
from ..glob import glob_match, match_all
from ..keyspace import Keyspace, applies
from ..resp import NULL_ARRAY, Raw, ReplyError
from ..session import Session
from ..zset import (SCAN_WHOLE_MAX, ZSet, format_score, limit_window, parse_lex_range,
                    parse_score, parse_score_range)
from .args import INT64_MAX, parse_int, parse_int_in_range
from .table import command

NAN_SCORE = "ERR resulting score is not a number (NaN)"
NOT_SCORE_RANGE = "ERR min or max is not a float"
NOT_LEX_RANGE = "ERR min or max not valid string range item"
NOT_POSITIVE = "ERR value is out of range, must be positive"
#: ZRANDMEMBER with a negative count repeats members; bound the reply size
MAX_RANDOM_REPLY = 1 << 24

# ------------------------------------------------------------------ appliers


@applies("zadd", "zincr")
def _apply_zadd(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    pairs = [(float(score), member) for score, member in e.data["members"]]
    z = data.get(e.key)
    if z is None:
        data[e.key] = ZSet(pairs)
    else:
        z.update(pairs)


@applies("zrem", "zremrangebyscore", "zremrangebyrank", "zremrangebylex", "zpopmin", "zpopmax")
def _apply_zrem(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    z = db.data.get(e.key)
    if z is None:
        return
    for member in e.data["members"]:
        z.discard(member)
    if not z:
        db.remove(e.key)


@applies("zunionstore", "zinterstore", "zdiffstore", "zrangestore")
def _apply_zstore(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    db.data.pop(e.key, None)
    db.expires.pop(e.key, None)
    if e.data["members"]:
        db.data[e.key] = ZSet((float(score), member) for score, member in e.data["members"])


# ------------------------------------------------------------------ helpers


def lookup_zset(s: Session, key: bytes) -> ZSet | None:
    """The sorted set at ``key``, None if absent; WRONGTYPE for other types."""
    v = s.lookup(key)
    if v is not None and type(v) is not ZSet:
        raise ReplyError(errors.WRONGTYPE)
    return v


def score_reply(s: Session, score: float):
    """A score as Redis replies it: bulk string in RESP2, double in RESP3."""
    text = format_score(score)
    return Raw(b",%s\r\n" % text) if s.resp3 else text


def pairs_reply(s: Session, pairs, withscores: bool) -> list:
    """``(score, member)`` pairs as a member list, or WITHSCORES-shaped."""
    if not withscores:
        return [m for _, m in pairs]
    if s.resp3:
        return [[m, Raw(b",%s\r\n" % format_score(sc))] for sc, m in pairs]
    out = []
    for sc, m in pairs:
        out.append(m)
        out.append(format_score(sc))
    return out


def _event_pairs(pairs) -> list:
    return [[format_score(sc + 0.0).decode(), m] for sc, m in pairs]  # stored -0.0 is 0.0




def score_arg(b: bytes, message: str = errors.NOT_FLOAT) -> float:
    v = parse_score(b)
    if v is None:
        raise ReplyError(message)
    return v


def _rank_window(n: int, start: int, end: int) -> tuple[int, int] | None:
    """Redis's index rules (negatives from the end, clamping) as ranks
    ``[lo, hi)``, or None for an empty range."""
    if start < 0:
        start += n
    if end < 0:
        end += n
    if start < 0:
        start = 0
    if start > end or start >= n:
        return None
    return start, min(end, n - 1) + 1


def store_pairs(s: Session, dst: bytes, pairs, event: str) -> int:
    """Replace ``dst`` with ``pairs`` (or delete it when there are none)."""
    if pairs:
        s.emit(event, dst, {"members": _event_pairs(pairs)})
    elif dst in s.db.data:
        s.emit("del", dst)
    return len(pairs)


def pop(s: Session, key: bytes, z: ZSet, from_max: bool, count: int) -> list:
    """Remove up to ``count`` lowest (or highest) members; returns their
    ``(score, member)`` pairs in pop order. Shared with the blocking pops."""
    n = len(z)
    pairs = z.slice(max(0, n - count), n, reverse=True) if from_max else z.slice(0, count)
    s.emit("zpopmax" if from_max else "zpopmin", key, {"members": [m for _, m in pairs]})
    return pairs


# ------------------------------------------------------------------ ZADD


def _zadd(s: Session, args: list[bytes], incr: bool) -> object:
    nx = xx = gt = lt = ch = False
    i = 2
    while i < len(args):
        opt = args[i].upper()
        if opt == b"NX":
            nx = True
        elif opt == b"XX":
            xx = True
        elif opt == b"CH":
            ch = True
        elif opt == b"INCR":
            incr = True
        elif opt == b"GT":
            gt = True
        elif opt == b"LT":
            lt = True
        else:
            break
        i += 1
    rest = len(args) - i
    if rest == 0 or rest % 2:
        raise ReplyError(errors.SYNTAX)
    if nx and xx:
        raise ReplyError("ERR XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise ReplyError("ERR GT, LT, and/or NX options at the same time are not compatible")
    if incr and rest > 2:
        raise ReplyError("ERR INCR option supports a single increment-element pair")
    pairs = [(score_arg(args[j]), args[j + 1]) for j in range(i, len(args), 2)]
    key = args[1]
    z = lookup_zset(s, key)
    if z is None and xx:
        return None if incr else 0
    current = z.scores if z is not None else {}
    changed: dict[bytes, float] = {}
    added = updated = 0
    result = None
    for score, member in pairs:
        cur = changed.get(member, current.get(member))
        if cur is not None:
            if nx:
                continue
            if incr:
                score = cur + score
                if math.isnan(score):
                    raise ReplyError(NAN_SCORE)
            if (lt and score >= cur) or (gt and score <= cur):
                continue
            if score != cur:
                updated += 1
                changed[member] = score
        else:
            if xx:
                continue
            added += 1
            changed[member] = score
        result = score
    if changed:
        s.emit("zincr" if incr else "zadd", key,
               {"members": _event_pairs((sc, m) for m, sc in changed.items())})
    if incr:
        return None if result is None else score_reply(s, result)
    return added + updated if ch else added


@command("zadd", -4, "write denyoom fast", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Add one or more members to a sorted set, or update its score if it already exists",
         complexity="O(log(N)) for each item added, where N is the number of elements in the sorted set.")
def zadd(s: Session, args: list[bytes]):
    return _zadd(s, args, False)


@command("zincrby", 4, "write denyoom fast", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Increment the score of a member in a sorted set",
         complexity="O(log(N)) where N is the number of elements in the sorted set.")
def zincrby(s: Session, args: list[bytes]):
    return _zadd(s, args, True)


@command("zrem", -3, "write fast", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Remove one or more members from a sorted set",
         complexity="O(M*log(N)) with N being the number of elements in the sorted set and M the "
                    "number of elements to be removed.")
def zrem(s: Session, args: list[bytes]):
    z = lookup_zset(s, args[1])
    if z is None:
        return 0
    removed = [m for m in dict.fromkeys(args[2:]) if m in z.scores]
    if removed:
        s.emit("zrem", args[1], {"members": removed})
    return len(removed)


# ------------------------------------------------------------------ point reads


@command("zscore", 3, "readonly fast", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Get the score associated with the given member in a sorted set",
         complexity="O(1)")
def zscore(s: Session, args: list[bytes]):
    z = lookup_zset(s, args[1])
    score = None if z is None else z.scores.get(args[2])
    return None if score is None else score_reply(s, score)


@command("zmscore", -3, "readonly fast", (1, 1, 1), group="sorted-set", since="6.2.0",
         summary="Get the score associated with the given members in a sorted set",
         complexity="O(N) where N is the number of members being requested.")
def zmscore(s: Session, args: list[bytes]):
    z = lookup_zset(s, args[1])
    scores = z.scores if z is not None else {}
    out = []
    for m in args[2:]:
        score = scores.get(m)
        out.append(None if score is None else score_reply(s, score))
    return out


@command("zcard", 2, "readonly fast", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Get the number of members in a sorted set", complexity="O(1)")
def zcard(s: Session, args: list[bytes]):
    z = lookup_zset(s, args[1])
    return 0 if z is None else len(z)


def _zrank(s: Session, args: list[bytes], reverse: bool):
    z = lookup_zset(s, args[1])
    rank = None if z is None else z.rank(args[2])
    if rank is None:
        return None
    return len(z) - 1 - rank if reverse else rank


@command("zrank", 3, "readonly fast", (1, 1, 1), group="sorted-set", since="2.0.0",
         summary="Determine the index of a member in a sorted set",
         complexity="O(log(N))")
def zrank(s: Session, args: list[bytes]):
    return _zrank(s, args, False)


@command("zrevrank", 3, "readonly fast", (1, 1, 1), group="sorted-set", since="2.0.0",
         summary="Determine the index of a member in a sorted set, with scores ordered from high to low",
         complexity="O(log(N))")
def zrevrank(s: Session, args: list[bytes]):
    return _zrank(s, args, True)


@command("zcount", 4, "readonly fast", (1, 1, 1), group="sorted-set", since="2.0.0",
         summary="Count the members in a sorted set with scores within the given values",
         complexity="O(log(N)) with N being the number of elements in the sorted set.")
def zcount(s: Session, args: list[bytes]):
    r = parse_score_range(args[2], args[3])
    if r is None:
        raise ReplyError(NOT_SCORE_RANGE)
    z = lookup_zset(s, args[1])
    if z is None:
        return 0
    lo, hi = z.score_span(r)
    return hi - lo


@command("zlexcount", 4, "readonly fast", (1, 1, 1), group="sorted-set", since="2.8.9",
         summary="Count the number of members in a sorted set between a given lexicographical range",
         complexity="O(log(N)) with N being the number of elements in the sorted set.")
def zlexcount(s: Session, args: list[bytes]):
    r = parse_lex_range(args[2], args[3])
    if r is None:
        raise ReplyError(NOT_LEX_RANGE)
    z = lookup_zset(s, args[1])
    if z is None:
        return 0
    lo, hi = z.lex_span(r)
    return hi - lo


# ------------------------------------------------------------------ ranges

RANK, SCORE, LEX = "rank", "score", "lex"


def _zrange(s: Session, args: list[bytes], src_idx: int, dst: bytes | None,
            by: str | None, reverse: bool | None):
    """Every ZRANGE form. ``by``/``reverse`` None means "chosen by options"
    (ZRANGE, ZRANGESTORE); the older commands fix them."""
    withscores = False
    offset, limit = 0, -1
    n = len(args)
    i = src_idx + 3
    while i < n:
        opt = args[i].upper()
        if dst is None and opt == b"WITHSCORES":
            withscores = True
        elif opt == b"LIMIT" and n - i - 1 >= 2:
            offset = parse_int(args[i + 1])
            limit = parse_int(args[i + 2])
            i += 2
        elif reverse is None and opt == b"REV":
            reverse = True
        elif by is None and opt == b"BYLEX":
            by = LEX
        elif by is None and opt == b"BYSCORE":
            by = SCORE
        else:
            raise ReplyError(errors.SYNTAX)
        i += 1
    reverse = bool(reverse)
    by = by or RANK
    if limit != -1 and by == RANK:
        raise ReplyError("ERR syntax error, "
                         "LIMIT is only supported in combination with either BYSCORE or BYLEX")
    if withscores and by == LEX:
        raise ReplyError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    lo_arg, hi_arg = args[src_idx + 1], args[src_idx + 2]
    if reverse and by != RANK:
        lo_arg, hi_arg = hi_arg, lo_arg  # given as max, min
    if by == RANK:
        start, end = parse_int(lo_arg), parse_int(hi_arg)
    elif by == SCORE:
        srange = parse_score_range(lo_arg, hi_arg)
        if srange is None:
            raise ReplyError(NOT_SCORE_RANGE)
    else:
        lrange = parse_lex_range(lo_arg, hi_arg)
        if lrange is None:
            raise ReplyError(NOT_LEX_RANGE)
    z = lookup_zset(s, args[src_idx])
    pairs = []
    if z is not None:
        if by == RANK:
            w = _rank_window(len(z), start, end)
            if w is not None:
                lo, hi = w
                if reverse:
                    lo, hi = len(z) - hi, len(z) - lo
                pairs = z.slice(lo, hi, reverse)
        elif by == SCORE:
            lo, hi = z.score_span(srange)
            pairs = z.slice(*limit_window(lo, hi, reverse, offset, limit), reverse)
        else:
            pairs = z.slice(*z.lex_span(lrange, reverse, offset, limit), reverse)
    if dst is not None:
        return store_pairs(s, dst, pairs, "zrangestore")
    return pairs_reply(s, pairs, withscores)


_RANGE_COMPLEXITY = ("O(log(N)+M) with N being the number of elements in the sorted set and M the "
                     "number of elements returned.")


@command("zrange", -4, "readonly", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Return a range of members in a sorted set", complexity=_RANGE_COMPLEXITY)
def zrange(s: Session, args: list[bytes]):
    return _zrange(s, args, 1, None, None, None)


@command("zrangestore", -5, "write denyoom", (1, 2, 1), group="sorted-set", since="6.2.0",
         summary="Store a range of members from sorted set into another key",
         complexity="O(log(N)+M) with N being the number of elements in the sorted set and M the "
                    "number of elements stored into the destination key.")
def zrangestore(s: Session, args: list[bytes]):
    return _zrange(s, args, 2, args[1], None, None)


@command("zrevrange", -4, "readonly", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Return a range of members in a sorted set, by index, with scores ordered from high to low",
         complexity=_RANGE_COMPLEXITY)
def zrevrange(s: Session, args: list[bytes]):
    return _zrange(s, args, 1, None, RANK, True)


@command("zrangebyscore", -4, "readonly", (1, 1, 1), group="sorted-set", since="1.0.5",
         summary="Return a range of members in a sorted set, by score", complexity=_RANGE_COMPLEXITY)
def zrangebyscore(s: Session, args: list[bytes]):
    return _zrange(s, args, 1, None, SCORE, False)


@command("zrevrangebyscore", -4, "readonly", (1, 1, 1), group="sorted-set", since="2.2.0",
         summary="Return a range of members in a sorted set, by score, with scores ordered from high to low",
         complexity=_RANGE_COMPLEXITY)
def zrevrangebyscore(s: Session, args: list[bytes]):
    return _zrange(s, args, 1, None, SCORE, True)


@command("zrangebylex", -4, "readonly", (1, 1, 1), group="sorted-set", since="2.8.9",
         summary="Return a range of members in a sorted set, by lexicographical range",
         complexity=_RANGE_COMPLEXITY)
def zrangebylex(s: Session, args: list[bytes]):
    return _zrange(s, args, 1, None, LEX, False)


@command("zrevrangebylex", -4, "readonly", (1, 1, 1), group="sorted-set", since="2.8.9",
         summary="Return a range of members in a sorted set, by lexicographical range, ordered from "
                 "higher to lower strings.", complexity=_RANGE_COMPLEXITY)
def zrevrangebylex(s: Session, args: list[bytes]):
    return _zrange(s, args, 1, None, LEX, True)


# ------------------------------------------------------------------ range removal


def _zremrange(s: Session, args: list[bytes], by: str):
    if by == RANK:
        start, end = parse_int(args[2]), parse_int(args[3])
    elif by == SCORE:
        srange = parse_score_range(args[2], args[3])
        if srange is None:
            raise ReplyError(NOT_SCORE_RANGE)
    else:
        lrange = parse_lex_range(args[2], args[3])
        if lrange is None:
            raise ReplyError(NOT_LEX_RANGE)
    z = lookup_zset(s, args[1])
    if z is None:
        return 0
    if by == RANK:
        w = _rank_window(len(z), start, end)
        lo, hi = w if w is not None else (0, 0)
    elif by == SCORE:
        lo, hi = z.score_span(srange)
    else:
        lo, hi = z.lex_span(lrange)
    members = [m for _, m in z.slice(lo, hi)]
    if members:
        s.emit("zremrangeby" + by, args[1], {"members": members})
    return len(members)


@command("zremrangebyscore", 4, "write", (1, 1, 1), group="sorted-set", since="1.2.0",
         summary="Remove all members in a sorted set within the given scores",
         complexity="O(log(N)+M) with N being the number of elements in the sorted set and M the "
                    "number of elements removed by the operation.")
def zremrangebyscore(s: Session, args: list[bytes]):
    return _zremrange(s, args, SCORE)


@command("zremrangebyrank", 4, "write", (1, 1, 1), group="sorted-set", since="2.0.0",
         summary="Remove all members in a sorted set within the given indexes",
         complexity="O(log(N)+M) with N being the number of elements in the sorted set and M the "
                    "number of elements removed by the operation.")
def zremrangebyrank(s: Session, args: list[bytes]):
    return _zremrange(s, args, RANK)


@command("zremrangebylex", 4, "write", (1, 1, 1), group="sorted-set", since="2.8.9",
         summary="Remove all members in a sorted set between the given lexicographical range",
         complexity="O(log(N)+M) with N being the number of elements in the sorted set and M the "
                    "number of elements removed by the operation.")
def zremrangebylex(s: Session, args: list[bytes]):
    return _zremrange(s, args, LEX)


# ------------------------------------------------------------------ pops


def _zpop(s: Session, args: list[bytes], from_max: bool):
    if len(args) > 3:
        raise ReplyError(errors.SYNTAX)
    count = None
    if len(args) == 3:
        count = parse_int_in_range(args[2], 0, INT64_MAX, NOT_POSITIVE)
    z = lookup_zset(s, args[1])
    if z is None or count == 0:
        return []
    if count is None:  # one pair, flat in both protocols
        (score, member), = pop(s, args[1], z, from_max, 1)
        return [member, score_reply(s, score)]
    return pairs_reply(s, pop(s, args[1], z, from_max, count), True)


@command("zpopmin", -2, "write fast", (1, 1, 1), group="sorted-set", since="5.0.0",
         summary="Remove and return members with the lowest scores in a sorted set",
         complexity="O(log(N)*M) with N being the number of elements in the sorted set, and M being "
                    "the number of elements popped.")
def zpopmin(s: Session, args: list[bytes]):
    return _zpop(s, args, False)


@command("zpopmax", -2, "write fast", (1, 1, 1), group="sorted-set", since="5.0.0",
         summary="Remove and return members with the highest scores in a sorted set",
         complexity="O(log(N)*M) with N being the number of elements in the sorted set, and M being "
                    "the number of elements popped.")
def zpopmax(s: Session, args: list[bytes]):
    return _zpop(s, args, True)


def parse_mpop(args: list[bytes], numkeys_idx: int) -> tuple[list[bytes], bool, int]:
    """``numkeys key [key ...] MIN|MAX [COUNT count]`` of ZMPOP/BZMPOP:
    returns (keys, from_max, count)."""
    numkeys = parse_int_in_range(args[numkeys_idx], 1, INT64_MAX, "ERR numkeys should be greater than 0")
    where_idx = numkeys_idx + numkeys + 1
    if where_idx >= len(args):
        raise ReplyError(errors.SYNTAX)
    where = args[where_idx].upper()
    if where not in (b"MIN", b"MAX"):
        raise ReplyError(errors.SYNTAX)
    count = -1
    j = where_idx + 1
    while j < len(args):
        if count == -1 and args[j].upper() == b"COUNT" and j + 1 < len(args):
            count = parse_int_in_range(args[j + 1], 1, INT64_MAX, "ERR count should be greater than 0")
            j += 2
        else:
            raise ReplyError(errors.SYNTAX)
    return args[numkeys_idx + 1:where_idx], where == b"MAX", max(count, 1)


def mpop_reply(s: Session, key: bytes, pairs) -> list:
    return [key, [[m, score_reply(s, sc)] for sc, m in pairs]]


@command("zmpop", -4, "write movablekeys", (0, 0, 0), group="sorted-set", since="7.0.0", numkeys=1,
         summary="Remove and return members with scores in a sorted set",
         complexity="O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of "
                    "elements in the sorted set, and M being the number of elements popped.")
def zmpop(s: Session, args: list[bytes]):
    keys, from_max, count = parse_mpop(args, 1)
    for key in keys:
        z = lookup_zset(s, key)
        if z is not None:
            return mpop_reply(s, key, pop(s, key, z, from_max, count))
    return NULL_ARRAY


# ------------------------------------------------------------------ random, scan


@command("zrandmember", -2, "readonly random", (1, 1, 1), group="sorted-set", since="6.2.0",
         summary="Get one or multiple random elements from a sorted set",
         complexity="O(N) where N is the number of elements returned")
def zrandmember(s: Session, args: list[bytes]):
    if len(args) == 2:
        z = lookup_zset(s, args[1])
        return None if z is None else z.order[random.randrange(len(z))][1]
    count = parse_int(args[2])
    if count < -INT64_MAX:
        raise ReplyError("ERR value is out of range, value must between "
                         f"{-INT64_MAX} and {INT64_MAX}")
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHSCORES"):
        raise ReplyError(errors.SYNTAX)
    withscores = len(args) == 4
    if withscores and not -(INT64_MAX // 2) <= count <= INT64_MAX // 2:
        raise ReplyError("ERR value is out of range")
    z = lookup_zset(s, args[1])
    if z is None or count == 0:
        return []
    n = len(z)
    if count < 0:
        if -count > MAX_RANDOM_REPLY:
            raise ReplyError("ERR value is out of range")
        pairs = [z.order[random.randrange(n)] for _ in range(-count)]
    elif count >= n:
        pairs = z.slice(0, n, reverse=True)  # the whole set, highest first, as Redis replies
    else:
        pairs = [z.order[i] for i in random.sample(range(n), count)]
    return pairs_reply(s, pairs, withscores)


def _parse_cursor(b: bytes) -> int:
    """SCAN cursors as Redis reads them (``strtoul``: sign allowed, wraps)."""
    body = b[1:] if b[:1] in (b"+", b"-") else b
    if (body and not body.isdigit()) or (not body and b) or int(body or b"0") > 2**64 - 1:
        raise ReplyError("ERR invalid cursor")
    v = int(body or b"0")
    return (-v) % 2**64 if b[:1] == b"-" else v


@command("zscan", -3, "readonly random", (1, 1, 1), group="sorted-set", since="2.8.0",
         summary="Incrementally iterate sorted sets elements and associated scores",
         complexity="O(1) for every call. O(N) for a complete iteration, including enough command "
                    "calls for the cursor to return back to 0. N is the number of elements inside "
                    "the collection..")
def zscan(s: Session, args: list[bytes]):
    cursor = _parse_cursor(args[2])
    z = lookup_zset(s, args[1])
    if z is None:
        return [b"0", []]
    count, pattern = 10, None
    i = 3
    while i < len(args):
        opt = args[i].upper()
        if opt == b"COUNT" and i + 1 < len(args):
            count = parse_int(args[i + 1])
            if count < 1:
                raise ReplyError(errors.SYNTAX)
        elif opt == b"MATCH" and i + 1 < len(args):
            pattern = args[i + 1]
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    if len(z) <= SCAN_WHOLE_MAX:
        cursor, members = 0, [m for _, m in z.order]
    else:
        cursor, members = z.scan(cursor, count)
    out = []
    everything = match_all(pattern)
    for m in members:
        if everything or glob_match(pattern, m):
            out.append(m)
            out.append(format_score(z.scores[m]))
    return [b"%d" % cursor, out]

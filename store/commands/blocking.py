"""The blocking pops (Redis's "blocking" commands of t_list.c and t_zset.c):
BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.

With data there, each answers at once exactly as its non-blocking form
would (through the same helpers of ``lists`` and ``zsets``, so the events
are the same: ``lpop``/``rpop``, ``lpush``/``rpush``, ``zpopmin``/
``zpopmax``). Without, it returns ``Delayed`` with a ``KeyWait``: the client
blocks until a key it waits on is filled, and is then served from that key
by the ``serve`` function given here, in its own session (store/blocking.py).
Inside EXEC nothing blocks: the answer is the timeout's (for BLMOVE and
BRPOPLPUSH a null bulk there, as LMOVE's, though their timeout is a null
array).

The timeout is seconds as a long double, as Redis reads it: milliseconds
rounded up, 0 (or anything that rounds to 0) waits forever, a negative
value or one that overflows a 64-bit count of milliseconds is "negative".
Every timeout answers a null array, even for BLMOVE/BRPOPLPUSH.
"""

from __future__ import annotations

import math

from .. import errors, longdouble
from ..blocking import NOT_READY, KeyWait, Serve
from ..resp import NULL_ARRAY, Delayed, ReplyError
from ..session import Session
from ..zset import ZSet
from .lists import ListValue, lookup_list, move_element, parse_where, pop_elements
from .lists import parse_mpop as parse_list_mpop
from .table import command
from .zsets import lookup_zset, mpop_reply, pop, score_reply
from .zsets import parse_mpop as parse_zset_mpop

#: timeouts beyond this (about 31 years) wait forever: Redis's deadline
#: overflows there, and the event loop's timers would too
FOREVER_S = 1e9
_LLONG = 2 ** 63


def parse_timeout(b: bytes) -> float | None:
    """Seconds to wait (None: forever), as Redis reads a blocking timeout:
    ``(long long) ceill(strtold(b) * 1000)`` milliseconds, where a value
    out of that type's range becomes its minimum, hence "negative"."""
    v = longdouble.parse(b)
    if v is None:
        raise ReplyError(errors.TIMEOUT_NOT_FLOAT)
    if isinstance(v, float):  # +-inf
        raise ReplyError(errors.TIMEOUT_NEGATIVE)
    ms = longdouble.round_ld(v * 1000)
    if isinstance(ms, float):
        raise ReplyError(errors.TIMEOUT_NEGATIVE)
    ms = math.ceil(ms)
    if ms < 0 or ms >= _LLONG:
        raise ReplyError(errors.TIMEOUT_NEGATIVE)
    if ms == 0 or ms / 1000 > FOREVER_S:
        return None
    return ms / 1000


def _block(s: Session, seconds: float | None, keys: list[bytes], serve: Serve, in_exec=NULL_ARRAY):
    """Nothing to pop now: wait on ``keys``; in EXEC answer ``in_exec`` at
    once (a null array, but BLMOVE's is a null bulk, as LMOVE's)."""
    if s.in_exec:
        return in_exec
    return Delayed(NULL_ARRAY, seconds, KeyWait(s.db_index, keys, serve))


def _list_at(s: Session, key: bytes):
    """The list a ready key holds now, or None (gone, or another type)."""
    v = s.lookup(key)
    return v if type(v) is ListValue else None


def _zset_at(s: Session, key: bytes):
    v = s.lookup(key)
    return v if type(v) is ZSet else None


# ------------------------------------------------------------------ lists


def _bpop(s: Session, args: list[bytes], left: bool):
    seconds = parse_timeout(args[-1])
    keys = args[1:-1]
    for key in keys:
        if lookup_list(s, key) is not None:
            return [key, pop_elements(s, key, left, 1)[0]]

    def serve(s: Session, key: bytes):
        if _list_at(s, key) is None:
            return NOT_READY
        return [key, pop_elements(s, key, left, 1)[0]]

    return _block(s, seconds, keys, serve)


@command("blpop", -3, "write noscript blocking", (1, -2, 1), group="list", since="2.0.0",
         summary="Remove and get the first element in a list, or block until one is available",
         complexity="O(N) where N is the number of provided keys.")
def blpop(s: Session, args: list[bytes]):
    return _bpop(s, args, True)


@command("brpop", -3, "write noscript blocking", (1, -2, 1), group="list", since="2.0.0",
         summary="Remove and get the last element in a list, or block until one is available",
         complexity="O(N) where N is the number of provided keys.")
def brpop(s: Session, args: list[bytes]):
    return _bpop(s, args, False)


def _bmove(s: Session, src: bytes, dst: bytes, from_left: bool, to_left: bool, seconds: float | None):
    if lookup_list(s, src) is not None:
        return move_element(s, src, dst, from_left, to_left)

    def serve(s: Session, key: bytes):
        if _list_at(s, key) is None:
            return NOT_READY
        return move_element(s, key, dst, from_left, to_left)  # WRONGTYPE if dst is not a list

    return _block(s, seconds, [src], serve, None)


@command("blmove", 6, "write denyoom noscript blocking", (1, 2, 1), group="list", since="6.2.0",
         summary="Pop an element from a list, push it to another list and return it; or block until "
                 "one is available",
         complexity="O(1)")
def blmove(s: Session, args: list[bytes]):
    from_left = parse_where(args[3])
    to_left = parse_where(args[4])
    return _bmove(s, args[1], args[2], from_left, to_left, parse_timeout(args[5]))


@command("brpoplpush", 4, "write denyoom noscript blocking", (1, 2, 1), group="list", since="2.2.0",
         summary="Pop an element from a list, push it to another list and return it; or block until "
                 "one is available",
         complexity="O(1)")
def brpoplpush(s: Session, args: list[bytes]):
    return _bmove(s, args[1], args[2], False, True, parse_timeout(args[3]))


@command("blmpop", -5, "write blocking movablekeys", (0, 0, 0), group="list", since="7.0.0", numkeys=2,
         summary="Pop elements from a list, or block until one is available",
         complexity="O(N+M) where N is the number of provided keys and M is the number of elements "
                    "returned.")
def blmpop(s: Session, args: list[bytes]):
    keys, left, count = parse_list_mpop(args, 2)
    seconds = parse_timeout(args[1])
    for key in keys:
        if lookup_list(s, key) is not None:
            return [key, pop_elements(s, key, left, count)]

    def serve(s: Session, key: bytes):
        if _list_at(s, key) is None:
            return NOT_READY
        return [key, pop_elements(s, key, left, count)]

    return _block(s, seconds, keys, serve)


# ------------------------------------------------------------------ sorted sets


def _bzpop(s: Session, args: list[bytes], from_max: bool):
    seconds = parse_timeout(args[-1])
    keys = args[1:-1]

    def one(s: Session, key: bytes, z: ZSet) -> list:
        (score, member), = pop(s, key, z, from_max, 1)
        return [key, member, score_reply(s, score)]

    for key in keys:
        z = lookup_zset(s, key)
        if z is not None:
            return one(s, key, z)

    def serve(s: Session, key: bytes):
        z = _zset_at(s, key)
        return NOT_READY if z is None else one(s, key, z)

    return _block(s, seconds, keys, serve)


_BZPOP_COMPLEXITY = "O(log(N)) with N being the number of elements in the sorted set."


@command("bzpopmin", -3, "write noscript blocking fast", (1, -2, 1), group="sorted-set", since="5.0.0",
         summary="Remove and return the member with the lowest score from one or more sorted sets, or "
                 "block until one is available",
         complexity=_BZPOP_COMPLEXITY)
def bzpopmin(s: Session, args: list[bytes]):
    return _bzpop(s, args, False)


@command("bzpopmax", -3, "write noscript blocking fast", (1, -2, 1), group="sorted-set", since="5.0.0",
         summary="Remove and return the member with the highest score from one or more sorted sets, or "
                 "block until one is available",
         complexity=_BZPOP_COMPLEXITY)
def bzpopmax(s: Session, args: list[bytes]):
    return _bzpop(s, args, True)


@command("bzmpop", -5, "write blocking movablekeys", (0, 0, 0), group="sorted-set", since="7.0.0", numkeys=2,
         summary="Remove and return members with scores in a sorted set or block until one is available",
         complexity="O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of "
                    "elements in the sorted set, and M being the number of elements popped.")
def bzmpop(s: Session, args: list[bytes]):
    keys, from_max, count = parse_zset_mpop(args, 2)
    seconds = parse_timeout(args[1])
    for key in keys:
        z = lookup_zset(s, key)
        if z is not None:
            return mpop_reply(s, key, pop(s, key, z, from_max, count))

    def serve(s: Session, key: bytes):
        z = _zset_at(s, key)
        return NOT_READY if z is None else mpop_reply(s, key, pop(s, key, z, from_max, count))

    return _block(s, seconds, keys, serve)

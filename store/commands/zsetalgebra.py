"""Sorted-set algebra: ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD.

Inputs may be sorted sets or plain sets (members count with score 1, as in
Redis). Sums are added in the order Redis adds them, so results match to the
last digit. The STORE forms log one ``zunionstore``/``zinterstore``/
``zdiffstore`` event carrying the destination's full new contents (or
``del`` when the result is empty); see ``zsets`` for the appliers.
"""

from __future__ import annotations

from .. import errors
from ..resp import ReplyError
from ..session import Session
from ..zset import ZSet
from .args import INT64_MAX, parse_int, parse_int_in_range
from .table import command
from .zsets import pairs_reply, score_arg, store_pairs

UNION, INTER, DIFF = "union", "inter", "diff"


def _items(src) -> list[tuple[bytes, float]]:
    if type(src) is ZSet:
        return [(m, sc) for sc, m in src.order]
    return [(m, 1.0) for m in src]


def _find(src, member: bytes) -> float | None:
    if type(src) is ZSet:
        return src.scores.get(member)
    return 1.0 if member in src else None


def _aggregate(acc: float, value: float, how: bytes) -> float:
    if how == b"SUM":
        acc = acc + value
        return 0.0 if acc != acc else acc  # inf + -inf is NaN; Redis makes it 0
    if how == b"MIN":
        return value if value < acc else acc
    return value if value > acc else acc


def _setop(s: Session, args: list[bytes], numkeys_idx: int, dst: bytes | None, op: str,
           cardinality_only: bool = False):
    """ZUNION/ZINTER/ZDIFF, their STORE forms and ZINTERCARD."""
    name = args[0].decode("utf-8", "replace").lower()
    setnum = parse_int(args[numkeys_idx])
    if setnum < 1:
        raise ReplyError(f"ERR at least 1 input key is needed for '{name}' command")
    if setnum > len(args) - (numkeys_idx + 1):
        raise ReplyError(errors.SYNTAX)
    srcs = []
    j = numkeys_idx + 1
    for key in args[j:j + setnum]:
        v = s.lookup(key)
        if v is not None and type(v) is not ZSet and not isinstance(v, set):
            raise ReplyError(errors.WRONGTYPE)
        srcs.append(v)
    j += setnum
    weights = [1.0] * setnum
    how = b"SUM"
    withscores = False
    limit = 0
    remaining = len(args) - j
    while remaining:
        opt = args[j].upper()
        if op != DIFF and not cardinality_only and remaining >= setnum + 1 and opt == b"WEIGHTS":
            for k in range(setnum):
                weights[k] = score_arg(args[j + 1 + k], "ERR weight value is not a float")
            j += setnum + 1
        elif op != DIFF and not cardinality_only and remaining >= 2 and opt == b"AGGREGATE":
            how = args[j + 1].upper()
            if how not in (b"SUM", b"MIN", b"MAX"):
                raise ReplyError(errors.SYNTAX)
            j += 2
        elif dst is None and not cardinality_only and opt == b"WITHSCORES":
            withscores = True
            j += 1
        elif cardinality_only and remaining >= 2 and opt == b"LIMIT":
            limit = parse_int_in_range(args[j + 1], 0, INT64_MAX, "ERR LIMIT can't be negative")
            j += 2
        else:
            raise ReplyError(errors.SYNTAX)
        remaining = len(args) - j

    result: dict[bytes, float] = {}
    if op == DIFF:
        first = srcs[0]
        if first:
            others = [o for o in srcs[1:] if o]
            for m, sc in _items(first):
                if not any(_find(o, m) is not None for o in others):
                    result[m] = sc
    else:
        # smallest input first, as Redis does: it fixes the order in which
        # SUM adds floats, and an empty input ends an intersection at once
        inputs = sorted(zip(srcs, weights), key=lambda sw: len(sw[0]) if sw[0] else 0)
        if op == INTER:
            first, w0 = inputs[0]
            for m, sc in (_items(first) if first else ()):
                acc = w0 * sc
                if acc != acc:
                    acc = 0.0
                for src, w in inputs[1:]:
                    value = _find(src, m) if src else None
                    if value is None:
                        break
                    acc = _aggregate(acc, value * w, how)
                else:
                    result[m] = acc
                    if cardinality_only and limit and len(result) >= limit:
                        break
        else:
            for src, w in inputs:
                for m, sc in (_items(src) if src else ()):
                    value = w * sc
                    if value != value:
                        value = 0.0
                    acc = result.get(m)
                    result[m] = value if acc is None else _aggregate(acc, value, how)
    if cardinality_only:
        return len(result)
    pairs = sorted((sc, m) for m, sc in result.items())
    if dst is not None:
        return store_pairs(s, dst, pairs, f"z{op}store")
    return pairs_reply(s, pairs, withscores)


_SETOP_COMPLEXITY = ("O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, "
                     "and M being the number of elements in the resulting sorted set.")


@command("zunion", -3, "readonly movablekeys", (0, 0, 0), group="sorted-set", since="6.2.0", numkeys=1,
         summary="Add multiple sorted sets", complexity=_SETOP_COMPLEXITY)
def zunion(s: Session, args: list[bytes]):
    return _setop(s, args, 1, None, UNION)


@command("zinter", -3, "readonly movablekeys", (0, 0, 0), group="sorted-set", since="6.2.0", numkeys=1,
         summary="Intersect multiple sorted sets",
         complexity="O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being "
                    "the number of input sorted sets and M being the number of elements in the "
                    "resulting sorted set.")
def zinter(s: Session, args: list[bytes]):
    return _setop(s, args, 1, None, INTER)


@command("zdiff", -3, "readonly movablekeys", (0, 0, 0), group="sorted-set", since="6.2.0", numkeys=1,
         summary="Subtract multiple sorted sets",
         complexity="O(L + (N-K)log(N)) worst case where L is the total number of elements in all the "
                    "sets, N is the size of the first set, and K is the size of the result set.")
def zdiff(s: Session, args: list[bytes]):
    return _setop(s, args, 1, None, DIFF)


@command("zunionstore", -4, "write denyoom movablekeys", (1, 1, 1), group="sorted-set", since="2.0.0", numkeys=2,
         summary="Add multiple sorted sets and store the resulting sorted set in a new key",
         complexity=_SETOP_COMPLEXITY)
def zunionstore(s: Session, args: list[bytes]):
    return _setop(s, args, 2, args[1], UNION)


@command("zinterstore", -4, "write denyoom movablekeys", (1, 1, 1), group="sorted-set", since="2.0.0", numkeys=2,
         summary="Intersect multiple sorted sets and store the resulting sorted set in a new key",
         complexity="O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being "
                    "the number of input sorted sets and M being the number of elements in the "
                    "resulting sorted set.")
def zinterstore(s: Session, args: list[bytes]):
    return _setop(s, args, 2, args[1], INTER)


@command("zdiffstore", -4, "write denyoom movablekeys", (1, 1, 1), group="sorted-set", since="6.2.0", numkeys=2,
         summary="Subtract multiple sorted sets and store the resulting sorted set in a new key",
         complexity="O(L + (N-K)log(N)) worst case where L is the total number of elements in all the "
                    "sets, N is the size of the first set, and K is the size of the result set.")
def zdiffstore(s: Session, args: list[bytes]):
    return _setop(s, args, 2, args[1], DIFF)


@command("zintercard", -3, "readonly movablekeys", (0, 0, 0), group="sorted-set", since="7.0.0", numkeys=1,
         summary="Intersect multiple sorted sets and return the cardinality of the result",
         complexity="O(N*K) worst case with N being the smallest input sorted set, K being the number "
                    "of input sorted sets.")
def zintercard(s: Session, args: list[bytes]):
    return _setop(s, args, 1, None, INTER, cardinality_only=True)


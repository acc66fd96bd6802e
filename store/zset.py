"""The sorted set value (``TYPE`` says ``zset``) and its ranges.

A ``ZSet`` keeps two views of the same pairs: ``scores`` (member -> score,
O(1) ZSCORE) and ``order``, a ``SortedList`` of ``(score, member)`` tuples.
Tuples compare by score, then by member bytes, which is exactly Redis's
order (``memcmp`` then length), so rank, range and pop are O(log n).

Scores are doubles, never NaN; ``-0.0`` is stored as ``0.0`` because that is
what Redis's compact (listpack) encoding, used for every small set, reads
back. Replies print scores with ``%.17g`` as Redis 7.0 does (``0.1`` is
``0.10000000000000001``), and events carry them in the same form, which
round-trips every double exactly.

This module also parses what Redis parses with ``strtod``: scores (ZADD,
ZINCRBY, WEIGHTS) and score/lex range bounds, because their quirks (hex
floats, overflow errors, ``""`` meaning 0 in a range) are part of the type.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Iterator, NamedTuple

from sortedcontainers import SortedList

from . import keyspace

INF = math.inf

#: sets larger than this are scanned with a real cursor; smaller ones are
#: returned whole, as Redis does for its compact encoding (128 entries).
SCAN_WHOLE_MAX = 128


def format_score(score: float) -> bytes:
    """A score as Redis 7.0 prints it (``%.17g``; ``inf``/``-inf``)."""
    return b"%.17g" % score


class ZSet:
    """member -> score, plus ``(score, member)`` pairs in Redis order."""

    __slots__ = ("scores", "order", "_by_hash")

    def __init__(self, pairs: Iterator[tuple[float, bytes]] = ()):
        self.scores: dict[bytes, float] = {}
        self.order = SortedList()
        #: (hash, member) in hash order, built on the first big ZSCAN only
        self._by_hash: SortedList | None = None
        self.update(pairs)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        return iter(self.order)

    def copy(self) -> "ZSet":
        z = ZSet()
        z.scores = dict(self.scores)
        z.order = SortedList(self.order)
        return z

    # ------------------------------------------------------------ mutation

    def set(self, member: bytes, score: float) -> None:
        """Add ``member`` or move it to ``score``."""
        score += 0.0  # -0.0 -> 0.0
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            self.order.remove((old, member))
        elif self._by_hash is not None:
            self._by_hash.add((_hash(member), member))
        self.scores[member] = score
        self.order.add((score, member))

    def update(self, pairs) -> None:
        """``set`` for many ``(score, member)`` pairs; a big batch re-sorts
        once instead of inserting one by one."""
        pairs = pairs if isinstance(pairs, list) else list(pairs)
        if len(pairs) < 64 or len(pairs) * 8 < len(self.scores):
            for score, member in pairs:
                self.set(member, score)
            return
        scores = self.scores
        for score, member in pairs:
            scores[member] = score + 0.0
        self.order = SortedList([(sc, m) for m, sc in scores.items()])
        self._by_hash = None  # rebuilt on demand; hash order depends on members only

    def discard(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove((score, member))
        if self._by_hash is not None:
            self._by_hash.remove((_hash(member), member))
        return True

    # ------------------------------------------------------------ reading

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        return None if score is None else self.order.index((score, member))

    def slice(self, start: int, stop: int, reverse: bool = False) -> list[tuple[float, bytes]]:
        """Pairs at ranks ``start..stop-1`` (forward order), reversed if asked."""
        return list(self.order.islice(start, stop, reverse=reverse))

    def score_span(self, r: "ScoreRange") -> tuple[int, int]:
        """Ranks ``[lo, hi)`` of the members whose score is inside ``r``."""
        n = len(self.order)
        if r.min > r.max or (r.min == r.max and (r.minex or r.maxex)):
            return 0, 0
        if r.minex:
            lo = n if r.min == INF else self.order.bisect_left((math.nextafter(r.min, INF), b""))
        else:
            lo = self.order.bisect_left((r.min, b""))
        if r.maxex:
            hi = self.order.bisect_left((r.max, b""))
        else:
            hi = n if r.max == INF else self.order.bisect_left((math.nextafter(r.max, INF), b""))
        return lo, max(lo, hi)

    def lex_span(self, r: "LexRange", reverse: bool = False,
                 offset: int = 0, limit: int = -1) -> tuple[int, int]:
        """Ranks ``[lo, hi)`` that a lex range walk yields (after ``offset``
        members skipped and at most ``limit`` taken; -1 is no limit).

        Lex ranges assume every score is equal. When they are, this is two
        bisections. When they are not, Redis's answer depends on its encoding;
        this walks the pairs like its compact encoding does (the one every
        small set uses): find the first member inside the range from one end,
        then take members while they stay inside the bound on the far side.
        """
        order, n = self.order, len(self.order)
        if n == 0 or not r.nonempty():
            return 0, 0
        if not (r.gte_min(order[-1][1]) and r.lte_max(order[0][1])):
            return 0, 0
        if order[0][0] == order[-1][0]:
            score = order[0][0]
            if r.min is None:
                lo = 0
            else:
                lo = (order.bisect_right if r.minex else order.bisect_left)((score, r.min))
            if r.max is None:
                hi = n
            else:
                hi = (order.bisect_left if r.maxex else order.bisect_right)((score, r.max))
            return limit_window(lo, hi, reverse, offset, limit)
        if offset < 0:
            return 0, 0
        if not reverse:
            i = next((i for i in range(n) if r.gte_min(order[i][1])), n)
            if i >= n or not r.lte_max(order[i][1]):
                return 0, 0
            i += offset
            j = i
            while j < n and j - i != limit and r.lte_max(order[j][1]):
                j += 1
            return (i, j) if i < j else (0, 0)
        i = next((i for i in range(n - 1, -1, -1) if r.lte_max(order[i][1])), -1)
        if i < 0 or not r.gte_min(order[i][1]):
            return 0, 0
        i -= offset
        j = i
        while j >= 0 and i - j != limit and r.gte_min(order[j][1]):
            j -= 1
        return (j + 1, i + 1) if j < i else (0, 0)

    def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """One ZSCAN step over a large set: members in the order of a stable
        64-bit hash, starting at hash ``cursor``. Every member present for a
        whole scan is returned once, whatever is added or removed meanwhile
        (the guarantee Redis gives). Returns (next cursor or 0, members)."""
        if self._by_hash is None:
            self._by_hash = SortedList((_hash(m), m) for m in self.scores)
        idx = self._by_hash
        i = idx.bisect_left((cursor, b""))
        j = min(i + count, len(idx))
        while j < len(idx) and idx[j][0] == idx[j - 1][0]:
            j += 1  # never split members that share a hash
        members = [m for _, m in idx.islice(i, j)]
        return (0 if j >= len(idx) else idx[j][0]), members


def limit_window(lo: int, hi: int, reverse: bool, offset: int, limit: int) -> tuple[int, int]:
    """Apply LIMIT offset/count to ranks ``[lo, hi)`` walked in a direction."""
    if offset < 0 or lo >= hi:
        return 0, 0
    if not reverse:
        lo += offset
        if limit >= 0:
            hi = min(hi, lo + limit)
    else:
        hi -= offset
        if limit >= 0:
            lo = max(lo, hi - limit)
    return (lo, hi) if lo < hi else (0, 0)


def _hash(member: bytes) -> int:
    # Stable across processes and replicas, unlike hash(), so cursors are too.
    return int.from_bytes(hashlib.blake2b(member, digest_size=8).digest(), "big")


# ---------------------------------------------------------------- ranges


class ScoreRange(NamedTuple):
    min: float
    minex: bool
    max: float
    maxex: bool


class LexRange(NamedTuple):
    """Bounds as member bytes; ``None`` is ``-`` for min and ``+`` for max.
    ``+`` as a min (or ``-`` as a max) is flagged empty."""

    min: bytes | None
    minex: bool
    max: bytes | None
    maxex: bool
    impossible: bool = False

    def nonempty(self) -> bool:
        if self.impossible:
            return False
        if self.min is None or self.max is None:
            return True
        return self.min < self.max or (self.min == self.max and not (self.minex or self.maxex))

    def gte_min(self, m: bytes) -> bool:
        if self.min is None:
            return True
        return m > self.min if self.minex else m >= self.min

    def lte_max(self, m: bytes) -> bool:
        if self.max is None:
            return True
        return m < self.max if self.maxex else m <= self.max


# ---------------------------------------------------------------- parsing

_STRTOD = re.compile(
    rb"""(?P<ws>[ \t\n\v\f\r]*)(?P<num>[+-]?(?:
        0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?
      | (?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?
      | inf(?:inity)?
      | nan(?:\([0-9a-z_]*\))?
    ))""",
    re.X | re.I,
)


_SPACE = b" \t\n\v\f\r"


def _strtod(b: bytes) -> tuple[float, bool, bool] | None:
    """``strtod`` over all of ``b``: (value, leading space?, out of range?),
    or None when ``b`` is not one whole number."""
    m = _STRTOD.fullmatch(b)
    if m is None:
        return None
    num = m.group("num")
    body = num.lstrip(b"+-").lower()
    if body.startswith(b"0x"):
        try:
            v = float.fromhex(num.decode())
        except OverflowError:
            return (-INF if num.startswith(b"-") else INF), bool(m.group("ws")), True
    else:
        v = float(num)
    if math.isinf(v):
        erange = not body.startswith(b"inf")  # overflow, not a spelled infinity
    elif v == 0.0:  # underflow when the digits were not all zeros
        digits = body[2:].split(b"p")[0] if body.startswith(b"0x") else body.split(b"e")[0]
        erange = digits.strip(b"0.") != b""
    else:
        erange = False
    return v, bool(m.group("ws")), erange


def parse_score(b: bytes) -> float | None:
    """A double as ZADD/ZINCRBY/WEIGHTS accept it, or None (Redis's
    ``getDoubleFromObject``: no space, no NaN, no overflow to inf or 0)."""
    try:
        v = float(b)  # the common case, fast; then reject what strtod would not take
    except ValueError:
        pass  # hex floats still may be fine
    else:
        if b[0] in _SPACE or b[-1] in _SPACE or b"_" in b or v != v:
            return None
        if v != 0.0 and v - v == 0.0:  # finite, non-zero: no range question
            return v
    r = _strtod(b)
    if r is None:
        return None
    v, space, erange = r
    if space or erange or math.isnan(v):
        return None
    return v


def _parse_bound(b: bytes) -> tuple[float, bool] | None:
    ex = b[:1] == b"("
    if ex:
        b = b[1:]
    if not b:
        return 0.0, ex  # strtod("") is 0 and Redis only checks where it stopped
    r = _strtod(b)
    if r is None or math.isnan(r[0]):
        return None
    return r[0], ex


def parse_score_range(lo: bytes, hi: bytes) -> ScoreRange | None:
    """``min``/``max`` of ZRANGEBYSCORE and friends: ``(`` makes a bound
    exclusive; ``-inf``/``+inf`` work. None if either is not a float."""
    a, b = _parse_bound(lo), _parse_bound(hi)
    if a is None or b is None:
        return None
    return ScoreRange(a[0], a[1], b[0], b[1])


def _parse_lex_item(b: bytes) -> tuple[str, bytes | None, bool] | None:
    if b == b"+":
        return "+", None, True
    if b == b"-":
        return "-", None, True
    if b[:1] == b"(":
        return "", b[1:], True
    if b[:1] == b"[":
        return "", b[1:], False
    return None


def parse_lex_range(lo: bytes, hi: bytes) -> LexRange | None:
    """``[a``/``(a``/``-``/``+`` bounds of ZRANGEBYLEX; None if invalid."""
    a, b = _parse_lex_item(lo), _parse_lex_item(hi)
    if a is None or b is None:
        return None
    impossible = a[0] == "+" or b[0] == "-"
    return LexRange(a[1], a[2], b[1], b[2], impossible)


def encoding(z: ZSet) -> bytes:
    """What OBJECT ENCODING says: Redis keeps small sets of short members
    as a listpack (zset-max-listpack-entries 128, -value 64)."""
    if len(z) <= 128 and all(len(m) <= 64 for m in z.scores):
        return b"listpack"
    return b"skiplist"


keyspace.TYPE_NAMES[ZSet] = b"zset"
keyspace.COPIERS[ZSet] = ZSet.copy
keyspace.ENCODINGS[ZSet] = encoding

"""Argument parsing with Redis's exact rules and error words.

``parse_int`` follows Redis's ``string2ll`` (no sign but '-', no spaces, no
leading zeros, 64-bit range); ``parse_float`` follows ``strtod`` as Redis uses
it (no surrounding spaces, no NaN). ``ArgCursor`` walks option lists and fails
the same way for every command when words are left over or unknown.
"""

from __future__ import annotations

import math
import re

from .. import errors
from ..resp import ReplyError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INT_RE = re.compile(rb"-?(0|[1-9][0-9]{0,19})\Z")
_FLOAT_BAD = re.compile(rb"[\s_]|^$")


def parse_int(b: bytes, message: str = errors.NOT_INTEGER) -> int:
    """A 64-bit signed integer spelled exactly as Redis accepts it."""
    if _INT_RE.match(b) is None or b == b"-0":
        raise ReplyError(message)
    v = int(b)
    if v < INT64_MIN or v > INT64_MAX:
        raise ReplyError(message)
    return v


def parse_int_in_range(b: bytes, lo: int, hi: int, message: str) -> int:
    """An integer in [lo, hi], ``message`` for a bad spelling and for out of
    range alike (Redis's ``getRangeLongFromObjectOrReply``)."""
    try:
        v = parse_int(b)
    except ReplyError:
        raise ReplyError(message) from None
    if v < lo or v > hi:
        raise ReplyError(message)
    return v


def parse_float(b: bytes, message: str = errors.NOT_FLOAT) -> float:
    """A double as Redis's ``getDoubleFromObject`` accepts it (inf yes, nan no)."""
    if _FLOAT_BAD.search(b):
        raise ReplyError(message)
    try:
        v = float(b)
    except ValueError:
        raise ReplyError(message) from None
    if math.isnan(v):
        raise ReplyError(message)
    return v


class ArgCursor:
    """Walks ``args[start:]``; ``finish()`` rejects anything left over."""

    __slots__ = ("args", "pos")

    def __init__(self, args: list[bytes], start: int):
        self.args = args
        self.pos = start

    def __bool__(self) -> bool:
        return self.pos < len(self.args)

    def remaining(self) -> int:
        return len(self.args) - self.pos

    def peek_upper(self) -> bytes | None:
        return self.args[self.pos].upper() if self.pos < len(self.args) else None

    def next(self) -> bytes:
        if self.pos >= len(self.args):
            raise ReplyError(errors.SYNTAX)
        v = self.args[self.pos]
        self.pos += 1
        return v

    def next_upper(self) -> bytes:
        return self.next().upper()

    def next_int(self, message: str = errors.NOT_INTEGER) -> int:
        return parse_int(self.next(), message)

    def next_float(self, message: str = errors.NOT_FLOAT) -> float:
        return parse_float(self.next(), message)

    def finish(self) -> None:
        if self.pos < len(self.args):
            raise ReplyError(errors.SYNTAX)

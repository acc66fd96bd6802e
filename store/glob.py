"""Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE) compiled to regexes.

Redis's ``stringmatchlen`` differs from ``fnmatch``, and these differences
were checked against redis-server 7.0.15 (tests/test_keys.py fuzzes them):

- ``[^a]`` negates, backslash escapes any character, ranges may be written
  backwards (``[z-a]``), and an unterminated class runs to the end of the
  pattern.
- A range takes the character after ``-`` literally, even ``]``: ``[a-]``
  is the range ``]``..``a``, not ``a`` or ``-``.
- Range ends compare as C ``char``, which is signed: ``[\\x00-\\xff]`` is the
  range -1..0, i.e. only the bytes 0xff and 0x00.
- An empty subject matches only the empty pattern: not even ``*`` matches it
  (KEYS and SCAN special-case ``*`` to mean every key, the empty one included;
  callers that want that do the same, see ``match_all``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable


def _signed(c: int) -> int:
    return c - 256 if c >= 128 else c


def _range_class(a: int, b: int) -> bytes:
    """Regex class items for the range a..b compared as signed chars."""
    lo, hi = sorted((_signed(a), _signed(b)))
    spans = []
    if lo < 0 <= hi:  # wraps: the high bytes, then 0..hi
        spans = [(lo & 0xFF, 0xFF), (0, hi)]
    else:
        spans = [(lo & 0xFF, hi & 0xFF)]
    return b"".join(re.escape(bytes([x])) + b"-" + re.escape(bytes([y])) for x, y in spans)


@lru_cache(maxsize=1024)
def compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out += b".*"
        elif c == 0x3F:  # ?
            out += b"."
        elif c == 0x5C and i + 1 < n:  # backslash
            i += 1
            out += re.escape(pattern[i : i + 1])
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            items = []
            while i < n and pattern[i] != 0x5D:
                if pattern[i] == 0x5C and i + 1 < n:
                    i += 1
                    items.append(re.escape(pattern[i : i + 1]))
                elif i + 2 < n and pattern[i + 1] == 0x2D:
                    items.append(_range_class(pattern[i], pattern[i + 2]))
                    i += 2
                else:
                    items.append(re.escape(pattern[i : i + 1]))
                i += 1
            if not items:
                out += b"(?!)" if not negate else b"."
            else:
                out += b"[" + (b"^" if negate else b"") + b"".join(items) + b"]"
        else:
            out += re.escape(pattern[i : i + 1])
        i += 1
    return re.compile(bytes(out) + rb"\Z", re.DOTALL)


def glob_match(pattern: bytes, subject: bytes) -> bool:
    """Whether ``subject`` matches ``pattern`` exactly as Redis's stringmatchlen says."""
    if not subject:
        return not pattern
    if pattern == b"*":
        return True
    return compile_glob(pattern).match(subject) is not None


def matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """``glob_match`` with the pattern compiled once, for testing many subjects."""
    if not pattern:
        return lambda subject: not subject
    match = compile_glob(pattern).match
    return lambda subject: bool(subject) and match(subject) is not None


def match_all(pattern: bytes | None) -> bool:
    """True when KEYS/SCAN-style matching should skip the pattern entirely
    (no pattern, or ``*``, which Redis treats as "every key")."""
    return pattern is None or pattern == b"*"

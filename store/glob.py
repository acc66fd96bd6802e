"""Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE) compiled to regexes.

Redis's ``stringmatchlen`` differs from ``fnmatch``: ``[^a]`` negates,
backslash escapes any character, and ranges may be written backwards.
"""

from __future__ import annotations

import re
from functools import lru_cache


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
                elif i + 2 < n and pattern[i + 1] == 0x2D and pattern[i + 2] != 0x5D:
                    lo, hi = sorted((pattern[i], pattern[i + 2]))
                    items.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
                    i += 2
                else:
                    items.append(re.escape(pattern[i : i + 1]))
                i += 1
            # an unterminated class runs to the end of the pattern, as in Redis
            if not items:
                out += b"(?!)" if not negate else b"."
            else:
                out += b"[" + (b"^" if negate else b"") + b"".join(items) + b"]"
        else:
            out += re.escape(pattern[i : i + 1])
        i += 1
    return re.compile(bytes(out) + rb"\Z", re.DOTALL)


def glob_match(pattern: bytes, subject: bytes) -> bool:
    if pattern == b"*":
        return True
    return compile_glob(pattern).match(subject) is not None

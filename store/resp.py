"""RESP2/RESP3 reply encoding and inline-command parsing (no sockets).

Handlers return plain Python values; ``encode`` turns them into wire bytes
for the connection's protocol version:

===================  ===================  ======================
handler returns      RESP2                RESP3
===================  ===================  ======================
``bytes``            bulk string          bulk string
``str``              simple string        simple string
``int``              integer              integer
``None``             null bulk ``$-1``    null ``_``
``NULL_ARRAY``       null array ``*-1``   null ``_``
``list``/``tuple``   array                array
``float``            bulk string          double ``,``
``RespMap``          flat array           map ``%``
``RespSet``          array                set ``~``
``Verbatim``         bulk string          verbatim ``=``
``bool``             integer 1/0          boolean ``#``
``Raw``              (bytes as given)     (bytes as given)
``ReplyError``       error ``-``          error ``-``
===================  ===================  ======================
"""

from __future__ import annotations

import math


class Raw(bytes):
    """Pre-encoded reply bytes, written as they are."""


class RespMap(list):
    """A map reply, given as a list of (key, value) pairs (order kept)."""


class RespSet(list):
    """A set reply, given as a list of members."""


class Verbatim(bytes):
    """A verbatim text reply (INFO, CLIENT LIST in RESP3)."""


class _NullArray:
    __slots__ = ()


NULL_ARRAY = _NullArray()


class ReplyError(Exception):
    """A command failed: the message is sent as ``-<message>``.

    The message starts with the error code, as Redis's do:
    ``ERR syntax error``, ``WRONGTYPE Operation against ...``.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


OK = Raw(b"+OK\r\n")
PONG = Raw(b"+PONG\r\n")
QUEUED = Raw(b"+QUEUED\r\n")
NIL2 = b"$-1\r\n"
NIL3 = b"_\r\n"
_INTS = [b":%d\r\n" % i for i in range(0, 1024)]


def format_double(value: float) -> bytes:
    """Redis's human-friendly double formatting (as INCRBYFLOAT and ZSCORE print)."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if math.isnan(value):
        return b"nan"
    if value == int(value) and abs(value) < 1e17:
        return b"%d" % int(value)
    return repr(value).encode()


def _double3(value: float) -> bytes:
    if math.isinf(value):
        return b",inf\r\n" if value > 0 else b",-inf\r\n"
    if math.isnan(value):
        return b",nan\r\n"
    return b"," + format_double(value) + b"\r\n"


def encode_error(message: str) -> bytes:
    """``-message``; newlines would break the framing, so they become spaces.
    Messages that quote client bytes decode them with surrogateescape, so the
    original bytes go back out unchanged."""
    raw = message.encode("utf-8", "surrogateescape")
    return b"-" + raw.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


def encode(reply, resp3: bool = False) -> bytes:
    """Encode one reply value."""
    out: list[bytes] = []
    _encode(reply, resp3, out)
    return b"".join(out)


def _encode(r, resp3: bool, out: list) -> None:
    t = type(r)
    if t is bytes or t is bytearray or t is memoryview:
        out.append(b"$%d\r\n" % len(r))
        out.append(r)
        out.append(b"\r\n")
    elif t is Raw:
        out.append(r)
    elif t is int:
        out.append(_INTS[r] if 0 <= r < 1024 else b":%d\r\n" % r)
    elif r is None:
        out.append(NIL3 if resp3 else NIL2)
    elif t is str:
        out.append(b"+" + r.encode() + b"\r\n")
    elif t is list or t is tuple:
        out.append(b"*%d\r\n" % len(r))
        for x in r:
            _encode(x, resp3, out)
    elif t is RespMap:
        if resp3:
            out.append(b"%%%d\r\n" % len(r))
        else:
            out.append(b"*%d\r\n" % (2 * len(r)))
        for k, v in r:
            _encode(k, resp3, out)
            _encode(v, resp3, out)
    elif t is RespSet:
        out.append((b"~%d\r\n" if resp3 else b"*%d\r\n") % len(r))
        for x in r:
            _encode(x, resp3, out)
    elif t is float:
        if resp3:
            out.append(_double3(r))
        else:
            b = format_double(r)
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif t is bool:
        out.append((b"#t\r\n" if r else b"#f\r\n") if resp3 else (b":1\r\n" if r else b":0\r\n"))
    elif t is Verbatim:
        if resp3:
            out.append(b"=%d\r\ntxt:" % (len(r) + 4))
            out.append(bytes(r))
            out.append(b"\r\n")
        else:
            out.append(b"$%d\r\n" % len(r))
            out.append(bytes(r))
            out.append(b"\r\n")
    elif r is NULL_ARRAY:
        out.append(NIL3 if resp3 else b"*-1\r\n")
    elif isinstance(r, ReplyError):
        out.append(encode_error(r.message))
    elif isinstance(r, int):  # IntEnum and friends
        out.append(b":%d\r\n" % int(r))
    else:
        raise TypeError(f"cannot encode reply of type {t.__name__}")


class InlineError(Exception):
    """An inline command line that cannot be split (unbalanced quotes)."""


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command like Redis's ``sdssplitargs``: whitespace
    separated words, double quotes with backslash escapes (``\\xHH``),
    single quotes literal. Raises ``InlineError`` on unbalanced quotes."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\r\n\x0b\x0c":
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        inq = insq = False
        while True:
            if inq:
                if i >= n:
                    raise InlineError("unbalanced quotes")
                c = line[i]
                if c == 0x5C and i + 3 < n and line[i + 1] == 0x78 and _ishex(line[i + 2]) and _ishex(line[i + 3]):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    e = chr(line[i])
                    cur.extend(_ESCAPES.get(e, e).encode("latin-1"))
                elif c == 0x22:
                    if i + 1 < n and line[i + 1] not in b" \t\r\n\x0b\x0c":
                        raise InlineError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    cur.append(c)
            elif insq:
                if i >= n:
                    raise InlineError("unbalanced quotes")
                c = line[i]
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    cur.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and line[i + 1] not in b" \t\r\n\x0b\x0c":
                        raise InlineError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    cur.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in b" \t\r\n\x0b\x0c":
                    break
                if c == 0x22:
                    inq = True
                elif c == 0x27:
                    insq = True
                else:
                    cur.append(c)
            i += 1
        args.append(bytes(cur))


def _ishex(c: int) -> bool:
    return c in b"0123456789abcdefABCDEF"


# ---------------------------------------------------------------- requests

#: Longest inline request, or multibulk/bulk length line, Redis buffers
#: while waiting for its end (PROTO_INLINE_MAX_SIZE).
INLINE_MAX = 64 * 1024
#: Largest request an unauthenticated client may announce (Redis's limits).
UNAUTH_MAX_ARGS = 10
UNAUTH_MAX_BULK = 16384
_INT32_MAX = 2**31 - 1
_LL_MIN, _LL_MAX = -(2**63), 2**63 - 1


class ProtocolError(Exception):
    """Input Redis refuses and answers by closing the connection. ``reason``
    is Redis's wording after ``Protocol error: ``, as raw bytes (the
    offending byte is echoed as sent)."""

    def __init__(self, reason: bytes):
        super().__init__(reason.decode("latin-1"))
        self.reason = reason

    def reply(self) -> bytes:
        return b"-ERR Protocol error: " + self.reason.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


def _string2ll(b: bytes) -> int | None:
    """Redis's ``string2ll``: optional '-', no '+', no spaces, no leading zeros."""
    if not b or len(b) > 20:
        return None
    digits = b[1:] if b[0] == 0x2D else b
    if not digits.isdigit() or (digits[0] == 0x30 and len(b) > 1):
        return None
    v = int(b)
    return v if _LL_MIN <= v <= _LL_MAX else None


class RequestParser:
    """Client requests parsed exactly as Redis parses them (inline and
    multibulk), one at a time, resumable across reads.

    The server's fast path is hiredis, whose reader accepts more than Redis
    (any RESP type inside a request) and words its errors differently; this
    parser is the reference it falls back on to answer garbage with Redis's
    own ``-ERR Protocol error: ...`` and to check the headers of a request
    still arriving (bulk lengths, unauthenticated limits).
    """

    __slots__ = ("buf", "pos", "args", "left", "bulk", "max_bulk", "authed")

    def __init__(self, max_bulk: int = 512 * 1024 * 1024, authed: bool = True):
        self.buf = bytearray()
        self.pos = 0
        self.args: list[bytes] | None = None  # the multibulk being read
        self.left = 0  # its arguments still to come
        self.bulk = -1  # length of the bulk being read, -1 before its header
        self.max_bulk = max_bulk
        self.authed = authed

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        elif self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data

    def buffered(self) -> int:
        return len(self.buf) - self.pos

    def idle(self) -> bool:
        """True between requests with nothing buffered."""
        return self.args is None and self.pos == len(self.buf)

    def next(self) -> list[bytes] | None:
        """The next complete request (``[]`` for an empty one, which Redis
        skips), or None until more bytes arrive. Raises ProtocolError."""
        buf, pos = self.buf, self.pos
        if self.args is None:
            if pos >= len(buf):
                return None
            if buf[pos] != 0x2A:  # not '*': an inline request
                return self._inline()
            nl = buf.find(b"\r", pos)
            if nl < 0:
                if len(buf) - pos > INLINE_MAX:
                    raise ProtocolError(b"too big mbulk count string")
                return None
            if nl + 1 >= len(buf):
                return None
            n = _string2ll(bytes(buf[pos + 1 : nl]))
            if n is None or n > _INT32_MAX:
                raise ProtocolError(b"invalid multibulk length")
            if n > UNAUTH_MAX_ARGS and not self.authed:
                raise ProtocolError(b"unauthenticated multibulk length")
            self.pos = nl + 2
            if n <= 0:
                return []
            self.args, self.left, self.bulk = [], n, -1
        args = self.args
        while self.left:
            pos = self.pos
            if self.bulk < 0:
                nl = buf.find(b"\r", pos)
                if nl < 0:
                    if len(buf) - pos > INLINE_MAX:
                        raise ProtocolError(b"too big bulk count string")
                    return None
                if nl + 1 >= len(buf):
                    return None
                if buf[pos] != 0x24:  # '$'
                    raise ProtocolError(b"expected '$', got '%c'" % buf[pos])
                n = _string2ll(bytes(buf[pos + 1 : nl]))
                if n is None or n < 0 or n > self.max_bulk:
                    raise ProtocolError(b"invalid bulk length")
                if n > UNAUTH_MAX_BULK and not self.authed:
                    raise ProtocolError(b"unauthenticated bulk length")
                self.bulk = n
                self.pos = pos = nl + 2
            end = pos + self.bulk
            if len(buf) < end + 2:
                return None
            args.append(bytes(buf[pos:end]))
            self.pos = end + 2  # Redis skips the two bytes after a bulk unread
            self.left -= 1
            self.bulk = -1
        self.args = None
        return args

    def _inline(self) -> list[bytes] | None:
        buf, pos = self.buf, self.pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > INLINE_MAX:
                raise ProtocolError(b"too big inline request")
            return None
        end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
        line = bytes(buf[pos:end])
        self.pos = nl + 1
        try:
            return split_inline(line)
        except InlineError:
            raise ProtocolError(b"unbalanced quotes in request") from None

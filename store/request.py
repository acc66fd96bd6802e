"""Request parsing: bytes from a client socket split into argument lists.

``RequestReader`` keeps hiredis's C reader as the fast path and falls back to
``RequestParser`` (Redis's own request grammar in Python) when hiredis
refuses input or when a request still arriving must have its headers checked
(bulk and multibulk limits, inline requests). Errors come out as
``ProtocolError`` with Redis's wording. No sockets here: tests feed bytes.
"""

from __future__ import annotations

import re

import hiredis

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


#: Past this many bytes, one request's bytes are no longer kept aside for
#: exact protocol errors (a bigger request is most likely one big value).
KEEP_MAX = 8 * 1024 * 1024
#: Bytes of a request still arriving that the Python parser copies to check
#: its headers; past this (a big value) its checking stops.
CHECK_MAX = 1024 * 1024
#: Aggregate headers of 10 million elements or more: hiredis allocates the
#: whole list when it reads the header (gigabytes for ``*2147483647``, which
#: Redis accepts), so input holding one goes to the Python parser. One
#: literal-prefixed pattern per type byte: each is a fast scan in C.
_BIG_AGGREGATE = re.compile(rb"[*%~>|][1-9][0-9]{7}")


def _big_aggregate(data: bytes) -> bool:
    return _BIG_AGGREGATE.search(data) is not None


class RequestReader:
    """A client's byte stream split into requests exactly as Redis splits
    it, at hiredis's speed.

    hiredis parses (the fast path), but its reader takes any RESP type inside
    a request and words its errors its own way. So the bytes from the start
    of the first request hiredis has not returned are kept aside (by
    reference), and when hiredis stumbles, or a request is still arriving, a
    ``RequestParser`` reads them by Redis's rules: garbage gets Redis's exact
    error, and the headers of a request still arriving are checked as Redis
    checks them (bulk lengths, unauthenticated limits). Inline commands, and
    whatever follows input Redis takes but hiredis does not, are read by that
    parser ("slow mode") up to the next request boundary.

    ``client.authenticated`` is read as requests are handed out: Redis's
    limits for unauthenticated clients apply to what follows an AUTH only
    once it has run (an unauthenticated client gets one request per
    ``read``). Known difference: hiredis reads ``+``, ``=`` and ``(``
    replies inside a request as strings, which Redis refuses.
    """

    def __init__(self, client, max_bulk: int = 512 * 1024 * 1024):
        self.client = client
        self.max_bulk = max_bulk
        self.hiredis = hiredis.Reader()
        self.fresh: bytes | None = None  # fed, not yet given to hiredis
        self.error: ProtocolError | None = None  # to raise once the requests before it are run
        self.partial = False  # hiredis holds part of a request
        self.kept: list[bytes] | None = None  # the bytes from a request's start on
        self.kept_len = 0
        #: the requests hiredis returned from the kept bytes (sizes tell
        #: where the one arriving starts)
        self.returned: list = []
        self.shadow: RequestParser | None = None  # the kept bytes, read by Redis's rules
        self.shadow_done = 0  # requests the shadow has read past
        self.checked = False  # the request arriving needs no more checking
        self.slow: RequestParser | None = None  # set while the Python parser reads
        self.tail = b""  # the end of the last read, for headers split across reads
        #: False once ``read`` has handed out everything the bytes fed so far
        #: complete (so the caller need not call it again until ``feed``)
        self.more = True

    def feed(self, data: bytes) -> None:
        self.more = True
        if self.slow is None and not self.partial and self.fresh is None and data[0] != 0x2A:
            self.slow = RequestParser(self.max_bulk)  # not '*' first: an inline request
        if self.slow is not None:
            self.slow.feed(data)
        else:
            self.fresh = data if self.fresh is None else self.fresh + data

    def buffered(self) -> int:
        """Bytes received and not yet handed out (roughly: hiredis keeps up
        to 1 KB it has already read)."""
        if self.slow is not None:
            return self.slow.buffered()
        return self.hiredis.len() if self.partial else 0

    def read(self) -> list[list[bytes]]:
        """The requests complete so far, in order (none: more bytes are
        needed); call again until none. Raises ProtocolError, with Redis's
        reason, once the requests before the bad input are handed out."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.fresh is not None:
            data, self.fresh = self.fresh, None
            self._take(data)
        if self.slow is not None or not self.client.authenticated:
            args = self._next_slow() if self.slow is not None else self._next_fast()
            return [args] if args is not None else []
        out: list[list[bytes]] = []
        append = out.append
        returned = self.returned
        gets = self.hiredis.gets
        has_data = self.hiredis.has_data
        try:
            while True:
                try:
                    args = gets()
                except hiredis.ProtocolError as exc:
                    args = self._anomaly(str(exc))
                    if args is not None:
                        append(args)
                    return out
                if args is False:
                    args = self._incomplete()
                    if args is not None:
                        append(args)
                    elif self.slow is None and self.error is None:
                        self.more = False
                    return out
                if type(args) is list:
                    for a in args:
                        if type(a) is not bytes:
                            args = self._anomaly(a)
                            if args is not None:
                                append(args)
                            return out
                    if args:
                        append(args)
                elif args is not None:  # None is "*-1", which Redis skips like "*0"
                    args = self._anomaly(args)
                    if args is not None:
                        append(args)
                    return out
                if has_data():
                    returned.append(args)
                else:  # a request boundary
                    self._boundary()
                    if self.error is None:
                        self.more = False
                    return out
        except ProtocolError as exc:
            if not out:
                raise
            self.error = exc
            return out

    # ------------------------------------------------------------ internals

    def _next_fast(self) -> list[bytes] | None:
        """One request from hiredis, checked against the limits Redis sets
        for unauthenticated clients."""
        while True:
            try:
                args = self.hiredis.gets()
            except hiredis.ProtocolError as exc:
                return self._anomaly(str(exc))
            if args is False:
                return self._incomplete()
            if type(args) is list:
                for a in args:
                    if type(a) is not bytes:
                        return self._anomaly(a)
                if args and not self.client.authenticated and (
                        len(args) > UNAUTH_MAX_ARGS or max(map(len, args)) > UNAUTH_MAX_BULK):
                    return self._anomaly(args)  # Redis refuses it at its header
            elif args is not None:
                return self._anomaly(args)
            if self.hiredis.has_data():
                self.returned.append(args)
            else:
                self._boundary()
            if args:
                return args
            if not self.partial:
                return None

    def _boundary(self) -> None:
        self.partial = False
        self.kept = self.shadow = None
        self.returned = []

    def _take(self, data: bytes) -> None:
        """Keep ``data`` aside and give it to hiredis (or, if it may hold an
        aggregate header too big for hiredis, to the Python parser)."""
        continued = self.partial  # a header may straddle only into a continued request
        if not continued:  # at a request boundary: keep the bytes from here
            self.kept = [data]
            self.kept_len = len(data)
            self.returned = []
            self.shadow = None
            self.checked = False
        elif self.kept is not None:
            self.kept.append(data)
            self.kept_len += len(data)
            if self.kept_len > KEEP_MAX:
                self.kept = self.shadow = None
        if self.shadow is not None:
            self.shadow.feed(data)
        tail = self.tail  # the stream's last 8 bytes, however small the reads
        self.tail = data[-8:] if len(data) >= 8 else (tail + data)[-8:]
        if (_big_aggregate(data) or (continued and tail and _big_aggregate(tail + data[:8]))) \
                and self._go_slow():
            return
        self.hiredis.feed(data)
        self.partial = True

    def _incomplete(self) -> list[bytes] | None:
        """hiredis waits for more bytes: check the request arriving by
        Redis's rules, which may refuse it now, or find it complete."""
        if not self.partial:
            return None
        if self.kept is None:
            self.returned = []
            return None
        if self.returned:  # a new request is the one arriving now
            self.shadow = None
            self.checked = False
            self._skip_returned()
            self.returned = []
        if self.checked:
            return None
        shadow = self._shadow()
        if shadow is None:
            return None
        args = shadow.next()
        if args is not None:
            # complete by Redis's rules while hiredis waits (an inline request,
            # a length line ended by a lone CR): Redis's reading wins
            self._go_slow()
            return args or self._next_slow()
        if shadow.buffered() > CHECK_MAX:
            self.shadow = None  # a big value is arriving: stop copying it
            self.checked = True
        return None

    def _skip_returned(self) -> None:
        """Drop the kept bytes of the requests hiredis returned, so they start
        at the one arriving. Their sizes follow from their arguments: hiredis
        takes only canonical lengths and CRLF-ended lines. (This costs about
        as much as hiredis's parsing, and only in reads that end inside a
        request.)"""
        size = 0
        for args in self.returned:
            if args is None:
                size += 5  # *-1\r\n
                continue
            n = len(args)
            size += 4 if n < 10 else 3 + len(str(n))
            for a in args:
                m = len(a)
                size += m + (6 if m < 10 else 7 if m < 100 else 5 + len(str(m)))
        kept = b"".join(self.kept)[size:]
        self.kept = [kept]
        self.kept_len = len(kept)

    def _shadow(self) -> RequestParser | None:
        """The Python parser over the kept bytes, placed at the first request
        hiredis has not returned (None if the bytes were not kept)."""
        shadow = self.shadow
        if shadow is None:
            if self.kept is None:
                return None
            shadow = self.shadow = RequestParser(self.max_bulk)
            shadow.feed(b"".join(self.kept))
            self.shadow_done = 0
        shadow.authed = self.client.authenticated
        while self.shadow_done < len(self.returned):
            if shadow.next() is None:
                return None  # not expected: hiredis returned those requests
            self.shadow_done += 1
        return shadow

    def _anomaly(self, what) -> list[bytes] | None:
        """hiredis refused the input or found a non-string in a request: do
        what Redis does with the same bytes."""
        if self._go_slow():
            return self._next_slow()
        raise ProtocolError(_hiredis_reason(what))  # bytes not kept: word hiredis's complaint

    def _go_slow(self) -> bool:
        """Hand the reading to the Python parser, from the first request
        hiredis has not returned. False if the bytes were not kept."""
        shadow = self._shadow()
        if shadow is None:
            return False
        self.slow = shadow
        self.hiredis = hiredis.Reader()
        self.kept = self.shadow = None
        self.returned = []
        return True

    def _next_slow(self) -> list[bytes] | None:
        parser = self.slow
        while True:
            parser.authed = self.client.authenticated
            args = parser.next()
            if args is None:
                if parser.idle():  # a request boundary: back to hiredis
                    self.slow = None
                    self.partial = False
                return None
            if args:
                return args


def _hiredis_reason(what) -> bytes:
    """Redis's reason for input hiredis refused, when the raw bytes were not
    kept: hiredis's message (or the odd value it read) mapped to Redis's."""
    if isinstance(what, str):
        if "multi-bulk" in what:
            return b"invalid multibulk length"
        if "ulk string length" in what:
            return b"invalid bulk length"
        m = re.search(r'got "(.)" as reply type byte', what)
        return b"expected '$', got '%s'" % (m.group(1).encode("latin-1") if m else b"?")
    if what is None:
        return b"invalid bulk length"
    if type(what) is list and all(type(a) is bytes for a in what):
        return b"unauthenticated multibulk length" if len(what) > UNAUTH_MAX_ARGS else b"unauthenticated bulk length"
    type_byte = {int: b":", list: b"*", float: b",", bool: b"#", dict: b"%"}.get(type(what), b"-")
    return b"expected '$', got '%s'" % type_byte

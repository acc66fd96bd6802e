"""RESP2/RESP3 reply encoding and request reading (no sockets).

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
``Push``             array                push ``>``
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


class Push(list):
    """An out-of-band message (pub/sub): a RESP3 push, a plain array in RESP2."""


class Delayed:
    """Not a reply yet: ``reply``, to send ``seconds`` from now (None: never,
    until the client goes). The connection runs the client's next requests
    only after it, as Redis does with a blocked client (WAIT); a handler
    cannot sleep without stalling every client. Code running a command
    inside another (EXEC, scripts) takes ``reply`` at once: Redis does not
    block there either. ``wait``: for a blocking pop, the keys it waits on
    and how to serve it (``store.blocking.KeyWait``); None for WAIT."""

    __slots__ = ("reply", "seconds", "wait")

    def __init__(self, reply, seconds: float | None, wait=None):
        self.reply = reply
        self.seconds = seconds
        self.wait = wait


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
            if type(x) is bytes:  # the common element, without a recursive call
                out.append(b"$%d\r\n%s\r\n" % (len(x), x))
            else:
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
    elif t is Push:
        out.append((b">%d\r\n" if resp3 else b"*%d\r\n") % len(r))
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

"""FJORD.ORIGIN: tag the records this connection writes.

A record's ``origin`` travels on the log with it (``streams/events.py``).
The trigger dispatcher skips records whose origin is ``trigger:<its own
name>``, so a trigger's function that writes back to Fjord over a connection
tagged that way cannot trigger itself again (see triggers/dispatcher.py).

``FJORD.ORIGIN tag`` sets the tag, ``FJORD.ORIGIN ""`` clears it and
``FJORD.ORIGIN`` alone answers the current tag (nil when none).
"""

from __future__ import annotations

from ..resp import OK, ReplyError
from ..session import Session
from .table import command

MAX_ORIGIN_BYTES = 256


@command("fjord.origin", -1, "noscript loading stale fast", group="connection",
         summary="Tags the records this connection writes with an origin (triggers skip their own)",
         since="7.0.0", complexity="O(1)")
def fjord_origin(s: Session, args: list[bytes]):
    if len(args) == 1:
        return None if s.origin is None else s.origin.encode()
    if len(args) > 2:
        raise ReplyError("ERR syntax error")
    tag = args[1]
    if len(tag) > MAX_ORIGIN_BYTES:
        raise ReplyError(f"ERR origin tag longer than {MAX_ORIGIN_BYTES} bytes")
    try:
        text = tag.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplyError("ERR origin tag must be UTF-8 text") from None
    s.origin = text or None
    return OK

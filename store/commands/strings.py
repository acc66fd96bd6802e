"""String commands (Redis's t_string.c) and the appliers of string events.

Events: ``set`` {value, expire_at}, ``incrby``/``incrbyfloat`` {value: the
result}, ``append`` {value: the suffix}, ``setrange`` {offset, value}. Every
expiry in an event is absolute unix milliseconds, never relative.
"""

from __future__ import annotations

from streams.events import Event

from .. import errors
from ..keyspace import Keyspace, applies
from ..resp import OK, ReplyError
from ..session import Session, now_ms
from .args import ArgCursor, parse_int
from .table import command

# ------------------------------------------------------------------ appliers


@applies("set")
def _apply_set(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    db.data[e.key] = e.data["value"]
    at = e.data.get("expire_at")
    if at is None:
        if db.expires:
            db.expires.pop(e.key, None)
    else:
        db.expires[e.key] = at


# ------------------------------------------------------------------ commands


@command("get", 2, "readonly fast", (1, 1, 1), group="string", summary="Returns the string value of a key.")
def get(s: Session, args: list[bytes]):
    return s.lookup_string(args[1])


def _parse_set_options(s: Session, args: list[bytes], cmdname: str):
    """SET's options: returns (nx, xx, get, keepttl, expire_at or None)."""
    nx = xx = get = keepttl = False
    expire_at = None
    unit = None
    cur = ArgCursor(args, 3)
    while cur:
        opt = cur.next_upper()
        if opt == b"NX" and not xx:
            nx = True
        elif opt == b"XX" and not nx:
            xx = True
        elif opt == b"GET":
            get = True
        elif opt == b"KEEPTTL" and unit is None:
            keepttl = True
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and unit is None and not keepttl and cur:
            unit = opt
            n = cur.next_int()
            if n <= 0 or (opt in (b"EX", b"EXAT") and n > 2**63 // 1000):
                raise ReplyError(f"ERR invalid expire time in '{cmdname}' command")
            now = now_ms()
            if opt == b"EX":
                expire_at = now + n * 1000
            elif opt == b"PX":
                expire_at = now + n
            elif opt == b"EXAT":
                expire_at = n * 1000
            else:
                expire_at = n
            if expire_at > 2**63 - 1 or expire_at < 0:
                raise ReplyError(f"ERR invalid expire time in '{cmdname}' command")
        else:
            raise ReplyError(errors.SYNTAX)
    return nx, xx, get, keepttl, expire_at


@command("set", -3, "write denyoom", (1, 1, 1), group="string",
         summary="Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.")
def set_(s: Session, args: list[bytes]):
    key, value = args[1], args[2]
    if len(args) == 3:
        s.emit("set", key, {"value": value, "expire_at": None})
        return OK
    nx, xx, get, keepttl, expire_at = _parse_set_options(s, args, "set")
    old = s.lookup(key)
    if get and old is not None and type(old) is not bytes:
        raise ReplyError(errors.WRONGTYPE)
    if (nx and old is not None) or (xx and old is None):
        return old if get else None
    if keepttl and old is not None:
        expire_at = s.db.expires.get(key)
    s.emit("set", key, {"value": value, "expire_at": expire_at})
    return old if get else OK

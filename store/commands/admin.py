"""Server commands: INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, LASTSAVE, SHUTDOWN."""

from __future__ import annotations

from .. import errors
from ..resp import OK, ReplyError
from ..session import Session
from .table import command


def _flush_mode(args: list[bytes]) -> None:
    if len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC"):
        raise ReplyError(errors.SYNTAX)
    if len(args) > 2:
        raise ReplyError(errors.SYNTAX)


@command("flushdb", -1, "write", group="server", summary="Removes all keys from the current database.")
def flushdb(s: Session, args: list[bytes]):
    _flush_mode(args)
    s.emit("flushdb", None)
    return OK


@command("flushall", -1, "write", group="server", summary="Removes all keys from all databases.")
def flushall(s: Session, args: list[bytes]):
    _flush_mode(args)
    s.emit("flushall", None, db=None)
    return OK

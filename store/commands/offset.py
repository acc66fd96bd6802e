"""FJORD.OFFSET: the log offset of this connection's last write.

Read-your-writes for derived state (views): a client writes, asks
``FJORD.OFFSET``, and passes the answer to ``FJORD.VIEW GET ... AFTER
offset``, which waits until the view reflects that record. The offset is
set when the write's record is staged (store/server.py ``commit``); like any
reply after a write, this one is held until that record is durable, so the
offset never names a record a crash could take back. -1 before any write.
"""

from __future__ import annotations

from ..session import Session
from .table import command


@command("fjord.offset", 1, "noscript loading stale fast", group="connection",
         summary="Returns the log offset of the last record this connection wrote (-1: none)",
         since="7.0.0", complexity="O(1)")
def fjord_offset(s: Session, args: list[bytes]):
    return s.last_offset

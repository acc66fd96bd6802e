"""``Session``: one client's state as command handlers see it.

A session has no socket, so handlers can be exercised directly. It carries
the selected database, protocol version, auth and name, and the effect events
the current command emitted. ``emit`` is how a handler changes anything:
the event is applied to the keyspace at once and queued for the log.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from streams.events import Event

from . import errors
from .keyspace import Keyspace
from .resp import ReplyError

if TYPE_CHECKING:
    from .server import Server

EMPTY: dict = {}
#: ``Event(...)`` without the NamedTuple's Python-level ``__new__`` (one
#: frame less per write; the same tuple)
_new_event = tuple.__new__


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Session:
    """Per-client state; handlers receive it as their first argument."""

    __slots__ = (
        "server", "keyspace", "id", "db_index", "db", "resp3", "authenticated", "name",
        "lib_name", "lib_ver", "events", "addr", "laddr", "created", "last_active",
        "last_cmd", "close_after_reply", "killed", "flags", "pubsub", "__weakref__",
        # MULTI/EXEC and WATCH (store/transactions.py)
        "multi", "watching", "in_exec",
        # FJORD.ORIGIN: tag written on this client's records (triggers skip their own)
        "origin",
        # FJORD.OFFSET: log offset of this client's last write (views' read-your-writes)
        "last_offset",
    )

    def __init__(self, server: "Server | None", keyspace: Keyspace, client_id: int = 0,
                 addr: str = "", laddr: str = "", authenticated: bool = True):
        self.server = server
        self.keyspace = keyspace
        self.id = client_id
        self.db_index = 0
        self.db = keyspace.dbs[0]
        self.resp3 = False
        self.authenticated = authenticated
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.events: list[Event] = []
        self.addr = addr
        self.laddr = laddr
        self.created = time.time()
        self.last_active = self.created
        self.last_cmd = "NULL"
        self.close_after_reply = False
        self.killed = False
        self.flags = "N"
        #: ``store.pubsub.Subscriptions`` while subscribed to anything, else None
        self.pubsub = None
        #: the open MULTI's ``Transaction`` (None outside MULTI)
        self.multi = None
        #: this client's ``Watch`` (None when it watches nothing)
        self.watching = None
        #: True while EXEC runs the queued commands: blocking commands
        #: answer at once, as if timed out (Redis never blocks inside EXEC)
        self.in_exec = False
        #: ``FJORD.ORIGIN`` tag put on the records this client writes (None: untagged)
        self.origin: str | None = None
        #: log offset of the last record this client wrote (-1: none yet)
        self.last_offset = -1

    # -------------------------------------------------------------- writing

    def emit(self, type_: str, key: bytes | None, data: dict = EMPTY, db: int | None = None) -> None:
        """Apply one effect event to the keyspace and queue it for the log."""
        ev = _new_event(Event, (type_, self.db_index if db is None else db, key, data))
        self.keyspace.apply(ev)
        self.events.append(ev)

    # -------------------------------------------------------------- reading

    def lookup(self, key: bytes, db=None):
        """The live value at ``key`` or None. A key found past its expiry is
        deleted here, by an explicit ``expired`` event (lazy expiry).
        Counts INFO's keyspace_hits/misses (for writes' lookups too, unlike
        Redis, which counts reads only)."""
        if db is None:
            db = self.db
        v = db.data.get(key)
        if v is None:
            if self.server is not None:
                self.server.stats.keyspace_misses += 1
            return None
        if db.expires:
            at = db.expires.get(key)
            if at is not None and at <= now_ms():
                self.expire_now(db, key)
                if self.server is not None:
                    self.server.stats.keyspace_misses += 1
                return None
        if self.server is not None:
            self.server.stats.keyspace_hits += 1
        return v

    def expire_now(self, db, key: bytes) -> None:
        if self.server is not None and self.server.is_replica:
            return  # replicas never delete on their own: the writer will log it
        if self.server is not None and self.server.write_error is not None:
            return  # appends are failing: the key reads as gone; delete it once the log works
        self.emit("expired", key, EMPTY, db.index)
        if self.server is not None:
            self.server.stats.expired_keys += 1

    def lookup_string(self, key: bytes, db=None) -> bytes | None:
        v = self.lookup(key, db)
        if v is not None and type(v) is not bytes:
            raise ReplyError(errors.WRONGTYPE)
        return v

    def select(self, index: int) -> None:
        if not 0 <= index < len(self.keyspace.dbs):
            raise ReplyError(errors.DB_INDEX)
        self.db_index = index
        self.db = self.keyspace.dbs[index]

"""Blocked clients: who waits for what, and serving them (Redis's blocked.c).

A command that cannot answer yet returns ``resp.Delayed`` and its connection
stops running that client's requests (server.py, "blocking"). Every such
client is recorded here, WAIT included, so INFO ``blocked_clients``, CLIENT
LIST's ``b`` flag and CLIENT UNBLOCK see them all. A blocking pop (BLPOP,
BZPOPMIN, ...) also carries a ``KeyWait``: the keys it waits on and how to
serve it from one of them.

Readiness, as in Redis: a key becomes *ready* when an event may have filled
it (a push, ZADD, RENAME/MOVE/COPY onto it, SWAPDB, ...). A keyspace observer,
registered only while some client waits on a key, notes ready keys in the
order they were first touched; appliers never serve anyone. After the
command that made them ready (EXEC included) has run and its record is
staged, ``Connection.execute`` calls ``serve``: for each ready key, its
waiters in the order they blocked (the longest-waiting first) re-run their
pop in their own session, each staging its own log record, until the key is
gone. A waiter whose type does not match the key (BZPOPMIN on a list) stays
blocked, and so does everyone left when the key is empty again. A served
BLMOVE pushes onto its destination, which may make that key ready in turn:
the loop goes on until no key is ready.

A deleted key (DEL, expiry, RENAME/MOVE away, FLUSHDB/FLUSHALL) makes no
waiter ready, except waiters that asked to hear of it (``on_delete``):
Redis answers a client blocked in XREADGROUP at once when its stream goes
(``-UNBLOCKED the stream key no longer exists``), while BLPOP and XREAD
just keep waiting.

A served client gets its reply, and its queued requests run, on the next
pass of the event loop (``Connection.unblock`` via ``call_soon``), as Redis
runs unblocked clients before it sleeps: the client that pushed finishes its
whole read first, and no client's commands run inside another's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from streams.events import Event

from . import errors
from .resp import Delayed, ReplyError
from .session import Session

if TYPE_CHECKING:
    from .server import Connection, Server

log = logging.getLogger("fjord.blocking")


class _NotReady:
    """A waiter's serve function found nothing it can take: it stays blocked."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_READY"


NOT_READY = _NotReady()

#: serve(session, key) -> the reply, or NOT_READY; may raise ReplyError
Serve = Callable[[Session, bytes], object]

#: Events that only take away from their key: they never make it ready, so
#: a served pop does not mark its own key again.
_EMPTYING = frozenset({
    "lpop", "rpop", "lrem", "ltrim", "lset", "zpopmin", "zpopmax", "zrem", "zremrangebyscore",
    "zremrangebyrank", "zremrangebylex", "del", "expired", "evicted", "expire", "persist",
    "rename_from", "move_from",
})
#: Events that remove their key: they make ready only ``on_delete`` waiters.
_DELETING = frozenset({"del", "expired", "evicted", "rename_from", "move_from"})


class KeyWait:
    """What a blocking pop waits for: ``keys`` of database ``db`` (each
    once, in the order given), and ``serve`` to run when one is ready.
    With ``on_delete``, ``serve`` also runs when a key is deleted (XREADGROUP
    answers -UNBLOCKED then), so it must handle a missing key."""

    __slots__ = ("db", "keys", "serve", "on_delete")

    def __init__(self, db: int, keys: list[bytes], serve: Serve, on_delete: bool = False):
        self.db = db
        self.keys = list(dict.fromkeys(keys))
        self.serve = serve
        self.on_delete = on_delete


class Blocking:
    """Every blocked client of one server, and the keys they wait on."""

    def __init__(self, server: "Server"):
        self.server = server
        #: every blocked connection, in blocking order, with its Delayed
        self.clients: dict["Connection", Delayed] = {}
        #: (db, key) -> the connections waiting on it, in blocking order
        self.by_key: dict[tuple[int, bytes], dict["Connection", KeyWait]] = {}
        #: (db, key) noted ready since the last ``serve``, in signal order
        self.ready: dict[tuple[int, bytes], None] = {}
        self._listening = False
        self._serving = False

    # ------------------------------------------------------------ registry

    def blocked_clients(self) -> int:
        """INFO's ``blocked_clients``: killed ones still closing excluded."""
        return sum(1 for conn in self.clients if not conn.closed)

    def block(self, conn: "Connection", delayed: Delayed) -> None:
        """Record a client that just blocked (``Connection._block``)."""
        self.clients[conn] = delayed
        s = conn.session
        s.flags = "b" if s.flags == "N" else s.flags + "b"
        wait = delayed.wait
        if wait is None:
            return
        for key in wait.keys:
            self.by_key.setdefault((wait.db, key), {})[conn] = wait
        if not self._listening:
            self.server.keyspace.observers.append(self.observe)
            self._listening = True

    def discard(self, conn: "Connection") -> None:
        """Forget a client that is no longer blocked (timeout, served,
        unblocked, gone). Harmless for one that is not blocked."""
        delayed = self.clients.pop(conn, None)
        if delayed is None:
            return
        s = conn.session
        s.flags = s.flags.replace("b", "") or "N"
        wait = delayed.wait
        if wait is None:
            return
        for key in wait.keys:
            slot = (wait.db, key)
            waiters = self.by_key.get(slot)
            if waiters is not None:
                waiters.pop(conn, None)
                if not waiters:
                    del self.by_key[slot]
        if not self.by_key and self._listening:
            self.server.keyspace.observers.remove(self.observe)
            self._listening = False
            self.ready.clear()

    def unblock(self, conn: "Connection", error: bool) -> bool:
        """CLIENT UNBLOCK: answer a blocked client as if it timed out, or
        with -UNBLOCKED; False if it is not blocked."""
        delayed = self.clients.get(conn)
        if delayed is None or conn.closed:
            return False
        self._wake(conn, ReplyError(errors.UNBLOCKED) if error else delayed.reply)
        return True

    def _wake(self, conn: "Connection", reply) -> None:
        """Unblock ``conn`` now (for CLIENT UNBLOCK, INFO and the wait
        lists); its reply and queued requests go on the next loop pass."""
        self.discard(conn)
        timer = conn.unblock_timer
        if timer is not None:  # it would answer a second time
            timer.cancel()
            conn.unblock_timer = None
        asyncio.get_running_loop().call_soon(conn.unblock, reply)

    # ------------------------------------------------------------ readiness

    def observe(self, e: Event) -> None:
        """Keyspace observer (only while someone waits on a key)."""
        key = e.key
        if key is not None:
            slot = (e.db, key)
            waiters = self.by_key.get(slot)
            if waiters is not None and (e.type not in _EMPTYING or (
                    e.type in _DELETING and any(w.on_delete for w in waiters.values()))):
                self.ready[slot] = None
        elif e.type in ("flushdb", "flushall"):
            for slot, waiters in self.by_key.items():
                if (e.type == "flushall" or slot[0] == e.db) and any(w.on_delete for w in waiters.values()):
                    self.ready[slot] = None
        elif e.type == "swapdb":
            # Waiters stay in their database number; its contents changed.
            swapped = (e.data["db1"], e.data["db2"])
            for slot in self.by_key:
                if slot[0] in swapped:
                    self.ready[slot] = None

    def serve(self) -> None:
        """Serve the waiters of every ready key (see the module doc). Called
        after a command's record is staged; re-entry is a no-op, the outer
        loop picks up keys made ready meanwhile."""
        if self._serving:
            return
        self._serving = True
        try:
            ready = self.ready
            while ready:
                slot = next(iter(ready))
                del ready[slot]
                self._serve_key(slot)
        finally:
            self._serving = False

    def _serve_key(self, slot: tuple[int, bytes]) -> None:
        waiters = self.by_key.get(slot)
        if not waiters:
            return
        db, key = slot
        data = self.server.keyspace.dbs[db].data
        for conn, wait in list(waiters.items()):
            if key not in data and not wait.on_delete:
                continue  # emptied (by those served before, or deleted)
            if waiters.get(conn) is not wait:
                continue  # left the list meanwhile
            if conn.closed:  # killed, connection_lost not yet run
                self.discard(conn)
                continue
            session = conn.session
            try:
                reply = wait.serve(session, key)
            except ReplyError as exc:  # e.g. BLMOVE onto a key of another type
                reply = exc
            except Exception as exc:  # a bug must cost one reply, not the server
                log.exception("serving a client blocked on %r failed", key)
                reply = ReplyError(f"ERR internal error serving a blocked client: {exc}")
            if session.events:  # its own record, after the one that made the key ready
                self.server.commit(session)
            if reply is not NOT_READY:
                self._wake(conn, reply)

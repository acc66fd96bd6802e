"""MULTI/EXEC state and WATCH tracking (what Redis keeps in multi.c).

Transactions
    MULTI puts a ``Transaction`` in ``session.multi``. From then on
    ``Connection.execute`` runs each command through its usual checks
    (unknown command, arity, NOAUTH, LOADING, MISCONF) and then, unless it
    is one of ``RUN_IN_MULTI``, queues it here and answers ``+QUEUED``. A
    command failing those checks gets its error and marks the transaction
    failed (``rejected``), so EXEC answers EXECABORT. EXEC (see
    store/commands/transactions.py) runs the queued handlers inside its own
    single call of ``execute``: their events pile up in ``session.events``
    and are staged as ONE log record, so replay applies a transaction whole
    or not at all, and a crash can never leave half of one.

WATCH
    A ``WatchTable`` per keyspace maps (db index, key) to the sessions
    watching it. It subscribes to ``Keyspace.observers`` only while someone
    watches, so unwatched servers pay nothing per event. Any event on a
    watched key makes its watchers dirty (and unwatches them, as Redis does:
    nothing later can make them clean); FLUSHDB, FLUSHALL and SWAPDB dirty
    the watchers of keys that existed in the databases they emptied or
    replaced. A key that had already expired (but was not deleted yet) when
    it was watched is special, as in Redis 7.0: its deletion changes nothing
    logically, so it dirties no one. EXEC also fails when a key live at
    WATCH time has expired by then, even if nothing deleted it yet.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from streams.events import Event

from . import errors
from .resp import ReplyError, encode_error
from .session import Session, now_ms

if TYPE_CHECKING:
    from .commands.table import Command
    from .keyspace import Db, Keyspace

#: Commands that run even inside MULTI (everything else is queued).
RUN_IN_MULTI = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})
QUEUED = b"+QUEUED\r\n"


class Transaction:
    """An open MULTI: the commands queued, and whether one was rejected."""

    __slots__ = ("commands", "failed")

    def __init__(self) -> None:
        self.commands: list[tuple["Command", list[bytes]]] = []
        self.failed = False


# ---------------------------------------------------------------- queueing


def queue(s: Session, cmd: "Command", args: list[bytes]) -> bytes:
    """Queue a command that passed its checks; called by Connection.execute
    for every command but ``RUN_IN_MULTI`` while ``s.multi`` is set."""
    if "no_multi" in cmd.flags:
        raise ReplyError(errors.NOT_IN_TRANSACTION)
    s.multi.commands.append((cmd, args))
    return QUEUED


def rejected(s: Session, args: list[bytes], message: str) -> bytes:
    """The reply to a command refused before it ran (unknown, wrong arity,
    NOAUTH, ...) by a client in MULTI, or to a refused EXEC.

    A refused command fails the open transaction. A refused EXEC, in or out
    of MULTI, discards the transaction and the watched keys, and says why in
    an EXECABORT error (Redis drops the ``ERR`` of its own messages there).
    """
    if args[0].lower() == b"exec":
        discard(s)
        if message.startswith("ERR "):
            message = message[4:]
        return encode_error(errors.EXECABORT_BECAUSE + message)
    if s.multi is not None:
        s.multi.failed = True
    return encode_error(message)


def discard(s: Session) -> None:
    """Leave MULTI (if in it) and forget the watched keys (DISCARD, EXEC,
    RESET, disconnect)."""
    s.multi = None
    unwatch(s)


#: what a dropped connection leaves behind
forget = discard


# ---------------------------------------------------------------- WATCH


class WatchedKey:
    """One client's watch on one key.

    ``present``: the key is in its database's dict (expired or not);
    ``expired``: it was already expired, though not deleted, when watched.
    Both stay as they were at WATCH time until an event on the key (which
    dirties the watcher, except for the deletion of an ``expired`` key) or a
    FLUSHDB/FLUSHALL/SWAPDB changes them; the flushes need ``present``
    because their events come after the keys are gone.
    """

    __slots__ = ("present", "expired")

    def __init__(self, present: bool, expired: bool):
        self.present = present
        self.expired = expired


class Watch:
    """What one client watches, and whether a change already doomed its EXEC."""

    __slots__ = ("keys", "dirty")

    def __init__(self) -> None:
        self.keys: dict[tuple[int, bytes], WatchedKey] = {}
        self.dirty = False

    def expired_since(self, keyspace: "Keyspace") -> bool:
        """A key live when watched is past its expiry now (deleted or not)."""
        now = now_ms()
        dbs = keyspace.dbs
        for (db, key), wk in self.keys.items():
            if not wk.expired and _is_expired(dbs[db], key, now):
                return True
        return False


def _is_expired(db: "Db", key: bytes, now: int) -> bool:
    at = db.expires.get(key)
    return at is not None and at <= now


class WatchTable:
    """Watched keys of every client of one keyspace, and the observer that
    marks their watchers dirty."""

    def __init__(self, keyspace: "Keyspace"):
        self.keyspace = keyspace
        self.by_key: dict[tuple[int, bytes], dict[Session, WatchedKey]] = {}
        self.listening = False

    def watch(self, s: Session, keys: list[bytes]) -> None:
        w = s.watching
        if w is None:
            w = s.watching = Watch()
        if w.dirty:
            return  # EXEC will fail whatever happens to these keys
        db = s.db
        now = now_ms()
        for key in keys:
            slot = (db.index, key)
            if slot in w.keys:
                continue
            wk = WatchedKey(key in db.data, _is_expired(db, key, now))
            w.keys[slot] = wk
            self.by_key.setdefault(slot, {})[s] = wk
        if self.by_key and not self.listening:
            self.keyspace.observers.append(self.observe)
            self.listening = True

    def unwatch(self, s: Session) -> None:
        """Drop every watch of ``s`` (not its ``dirty`` mark)."""
        w = s.watching
        for slot in w.keys:
            watchers = self.by_key.get(slot)
            if watchers is not None:
                watchers.pop(s, None)
                if not watchers:
                    del self.by_key[slot]
        w.keys = {}
        if not self.by_key and self.listening:
            self.keyspace.observers.remove(self.observe)
            self.listening = False

    def _dirty(self, s: Session) -> None:
        self.unwatch(s)
        s.watching.dirty = True

    # ------------------------------------------------------------ events

    def observe(self, e: Event) -> None:
        """Keyspace observer: runs after each applied event while anyone watches."""
        if e.key is not None:
            watchers = self.by_key.get((e.db, e.key))
            if watchers:
                self._touched(e.db, e.key, watchers)
        elif e.type == "flushdb":
            self._flushed(lambda db: db == e.db)
        elif e.type == "flushall":
            self._flushed(lambda db: True)
        elif e.type == "swapdb":
            self._swapped(e.data["db1"], e.data["db2"])

    def _touched(self, db: int, key: bytes, watchers: dict[Session, WatchedKey]) -> None:
        present = key in self.keyspace.dbs[db].data
        for s, wk in list(watchers.items()):
            if wk.expired and not present:
                # an expired key deleted: logically nothing changed
                wk.expired = wk.present = False
            else:
                self._dirty(s)

    def _flushed(self, emptied) -> None:
        for (db, _key), watchers in list(self.by_key.items()):
            if not emptied(db):
                continue
            for s, wk in list(watchers.items()):
                if not wk.present:
                    continue  # a key that did not exist cannot be flushed
                if wk.expired:
                    wk.expired = wk.present = False
                else:
                    self._dirty(s)

    def _swapped(self, one: int, two: int) -> None:
        """After SWAPDB: database ``db`` holds what ``other`` held before."""
        dbs = self.keyspace.dbs
        now = now_ms()
        for (db, key), watchers in list(self.by_key.items()):
            if db != one and db != two:
                continue
            new = dbs[db]
            old = dbs[two if db == one else one]
            was_there = key in old.data
            is_there = key in new.data
            if not (was_there or is_there):
                continue
            expired_now = is_there and _is_expired(new, key, now)
            for s, wk in list(watchers.items()):
                if wk.expired:
                    if not is_there:
                        wk.expired = wk.present = False  # expired key gone: no logical change
                        continue
                    if expired_now:
                        continue  # an expired key replaced by an expired key
                elif not was_there and expired_now:
                    wk.expired = wk.present = True  # nothing replaced by an expired key
                    continue
                self._dirty(s)


_TABLES: "weakref.WeakKeyDictionary[Keyspace, WatchTable]" = weakref.WeakKeyDictionary()


def watch_table(keyspace: "Keyspace") -> WatchTable:
    table = _TABLES.get(keyspace)
    if table is None:
        table = _TABLES[keyspace] = WatchTable(keyspace)
    return table


def watch(s: Session, keys: list[bytes]) -> None:
    watch_table(s.keyspace).watch(s, keys)


def unwatch(s: Session) -> None:
    """Forget every watched key and the dirty mark (UNWATCH)."""
    if s.watching is not None:
        watch_table(s.keyspace).unwatch(s)
        s.watching = None


def watch_failed(s: Session) -> bool:
    """Whether EXEC must answer a null array: a watched key changed or expired."""
    w = s.watching
    return w is not None and (w.dirty or w.expired_since(s.keyspace))


# ---------------------------------------------------------------- CLIENT LIST


def queued_count(s: Session) -> int:
    """CLIENT LIST's ``multi=``: commands queued, -1 outside MULTI."""
    return -1 if s.multi is None else len(s.multi.commands)


def client_flags(s: Session) -> str:
    """CLIENT LIST's ``flags=``: the session's own flags plus ``x`` (in
    MULTI) and ``d`` (a watched key changed), in Redis's order."""
    flags = s.flags.replace("N", "")
    if s.multi is not None:
        head = len(flags) - len(flags.lstrip("SMP"))
        flags = flags[:head] + "x" + flags[head:]
    if s.watching is not None and s.watching.dirty:
        flags += "d"
    return flags or "N"

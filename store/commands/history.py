"""``FJORD.HISTORY key [COUNT n]``: a key's most recent events, newest first.

Reply: an array of ``[offset, time_ms, type, data]`` entries, ``data`` being
the event's data flattened to ``[name, value, ...]`` (nested lists stay
arrays, ``nil`` for null). A key with no known history gets an empty array.
Scope: the current db, the events whose key is this key (``rename_to`` and
``copy_to`` name the destination, ``rename_from`` the source).

Design (the log can be long, the event loop must not wait on it):

- ``KeyHistory`` keeps, per (db, key), the offsets of the key's last
  ``PER_KEY`` records in a bounded deque, for at most ``MAX_KEYS`` keys
  (least recently written evicted first). Only offsets, so memory does not
  depend on value sizes.
- Live: ``Server.commit`` calls ``note(seq, events)`` as each record is
  staged; the record's offset is the committer's first offset plus its
  sequence number minus one (offsets are consecutive and only the committer
  appends).
- The past: the first FJORD.HISTORY after a start starts a worker thread
  that opens the log read-only (its own ``FileLog`` and event loop, so
  nothing runs on the server's loop) and indexes the last ``SCAN_RECORDS``
  records before the committer's first offset into a separate table,
  swapped in when done. Until then, history older than the start is simply
  not shown yet. Lazily, not at every start: decoding a million records in
  Python competes with the server for the interpreter, and most servers are
  never asked for history.
- Answering: the offsets are read back from the log (its reader threads) in
  a task, and the reply is sent as a ``Delayed`` one, like WAIT; records not
  yet durable are waited for (the reply would be held for them anyway).
  Every record read is checked to hold an event on the key, so an offset
  made stale (records lost in a failed append, then reused) is dropped:
  the index is a hint, the log is the truth.
- Inside MULTI/EXEC a command cannot wait, so it is refused there.

``fjord log history KEY`` scans the whole log instead (no limits).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from streams.events import Event

from .. import errors
from ..resp import Delayed, Raw, ReplyError, encode_error
from ..session import Session
from .args import ArgCursor
from .table import command

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("fjord.history")

#: offsets kept per key (the most COUNT can show)
PER_KEY = 64
#: keys tracked (live and past tables each); about 100 bytes + 8 per offset each
MAX_KEYS = 100_000
#: records indexed from the log at start-up
SCAN_RECORDS = 1_000_000
DEFAULT_COUNT = 10
#: how long a reply waits for a record still being made durable
DURABLE_WAIT_SECONDS = 5.0

Slot = tuple[int, bytes]
_answering: set[asyncio.Task] = set()


def _remember(table: OrderedDict, slot: Slot, offset: int, per_key: int, max_keys: int) -> None:
    d = table.get(slot)
    if d is None:
        table[slot] = d = deque(maxlen=per_key)
        if len(table) > max_keys:
            table.popitem(last=False)
    else:
        table.move_to_end(slot)
    if not d or d[-1] != offset:
        d.append(offset)


class KeyHistory:
    """Recent record offsets per (db, key); see the module doc."""

    def __init__(self, per_key: int = PER_KEY, max_keys: int = MAX_KEYS):
        self.per_key = per_key
        self.max_keys = max_keys
        #: offset of the first record staged by this server (None: not serving yet)
        self.base: int | None = None
        self.live: OrderedDict[Slot, deque[int]] = OrderedDict()
        self.past: OrderedDict[Slot, deque[int]] = OrderedDict()
        #: (log path, start, end) of the past not indexed yet, until asked
        self._past_scan: tuple[str, int, int] | None = None

    def start(self, server: "Server") -> None:
        """The committer is starting at the log's end: index from there on;
        the past is indexed on the first request (``offsets``)."""
        self.base = server.log.end_offset
        path = getattr(server.log, "path", None)
        if path is not None and self.base > server.log.start_offset:
            self._past_scan = (path, server.log.start_offset, self.base)

    def _scan_past_once(self) -> None:
        scan, self._past_scan = self._past_scan, None
        if scan is not None:
            threading.Thread(target=self._scan_past, args=scan, name="fjord-history-scan", daemon=True).start()

    def note(self, seq: int, events: list[Event]) -> None:
        """The ``seq``-th staged record holds ``events``."""
        if self.base is None:
            return
        offset = self.base + seq - 1
        for e in events:
            if e.key is not None:
                _remember(self.live, (e.db, e.key), offset, self.per_key, self.max_keys)

    def offsets(self, db: int, key: bytes, count: int) -> list[int]:
        """Up to ``count`` offsets of records on the key, newest first."""
        if self._past_scan is not None:
            self._scan_past_once()
        slot = (db, key)
        out: list[int] = []
        for table in (self.live, self.past):
            d = table.get(slot)
            if d:
                out.extend(reversed(d))
                if len(out) >= count:
                    break
        return out[:count]

    def _scan_past(self, path: str, start: int, end: int) -> None:
        from streams.filelog import FileLog

        async def scan() -> None:
            table: OrderedDict[Slot, deque[int]] = OrderedDict()
            flog = await FileLog.open(path, readonly=True)
            try:
                async for r in flog.read(max(start, end - SCAN_RECORDS), end):
                    for e in r.events:
                        if e.key is not None:
                            _remember(table, (e.db, e.key), r.offset, self.per_key, self.max_keys)
            finally:
                await flog.close()
            self.past = table  # one assignment: the loop sees the old table or the new one

        try:
            asyncio.run(scan())
            log.info("key history indexed %d keys from the log", len(self.past))
        except Exception:  # noqa: BLE001 - history is a convenience: log and go on without it
            log.warning("could not index key history from the log", exc_info=True)


def _flat(v):
    """Event data as RESP values: dicts become flat [name, value, ...]."""
    if isinstance(v, dict):
        out = []
        for k, x in v.items():
            out.append(k.encode() if isinstance(k, str) else k)
            out.append(_flat(x))
        return out
    if isinstance(v, (list, tuple)):
        return [_flat(x) for x in v]
    if isinstance(v, bool):
        return int(v)
    return v


async def _entries(server: "Server", db: int, key: bytes, offsets: list[int], count: int) -> list:
    log_ = server.log
    if offsets and not log_.end_offset > max(offsets):
        await log_.wait_for(max(offsets), DURABLE_WAIT_SECONDS)
    out = []
    for offset in offsets:  # newest first
        async for r in log_.read(offset, offset + 1):
            for e in reversed(r.events):
                if e.key == key and e.db == db:
                    out.append([r.offset, r.time_ms, e.type.encode(), _flat(e.data)])
        if len(out) >= count:
            break
    return out[:count]


@command("fjord.history", -2, "readonly noscript", (1, 1, 1), group="generic", since="0.1.0",
         summary="Returns the most recent events of a key from the log, newest first",
         complexity="O(N) where N is COUNT")
def fjord_history(s: Session, args: list[bytes]):
    cur = ArgCursor(args, 2)
    count = DEFAULT_COUNT
    while cur:
        if cur.next_upper() == b"COUNT":
            count = cur.next_int()
            if count <= 0:
                raise ReplyError(errors.OUT_OF_RANGE_POSITIVE)
        else:
            raise ReplyError(errors.SYNTAX)
    server = s.server
    conn = server.clients.get(s.id) if server is not None else None
    if conn is None or s.in_exec or s.multi is not None:
        raise ReplyError("ERR FJORD.HISTORY cannot run inside MULTI or a script")
    db, key = s.db_index, args[1]
    offsets = server.key_history.offsets(db, key, count)
    if not offsets:
        return []
    delayed = Delayed([], None)

    async def answer() -> None:
        try:
            reply = await _entries(server, db, key, offsets, count)
        except Exception as exc:  # noqa: BLE001 - one failed read costs one reply
            log.warning("FJORD.HISTORY could not read the log: %s", exc)
            reply = Raw(encode_error(f"ERR could not read the log: {exc}"))
        if server.blocking.clients.get(conn) is delayed:  # still waiting for this very reply
            conn.unblock(reply)

    task = asyncio.get_running_loop().create_task(answer())
    _answering.add(task)  # the loop holds tasks only weakly
    task.add_done_callback(_answering.discard)
    return delayed
